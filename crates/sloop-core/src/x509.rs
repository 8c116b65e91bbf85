//! X.509 helpers shared by the catalog (endorsers) and proxies.

use openssl::nid::Nid;
use openssl::x509::X509NameRef;

/// A distinguished name in OpenSSL's "oneline" form (`/DC=org/DC=example/CN=Jane Doe`), the form
/// grid tools print and image lists carry in `hv:dn` and `hv:ca`.
pub fn oneline(name: &X509NameRef) -> String {
    let mut out = String::new();
    for entry in name.entries() {
        let nid = entry.object().nid();
        let key = match nid {
            Nid::UNDEF => entry.object().to_string(),
            // OpenSSL prints emailAddress by its long name in the oneline form.
            Nid::PKCS9_EMAILADDRESS => "emailAddress".to_string(),
            _ => nid
                .short_name()
                .map_or_else(|_| entry.object().to_string(), str::to_string),
        };
        let value = entry
            .data()
            .to_string()
            .unwrap_or_else(|_| String::from_utf8_lossy(entry.data().as_slice()).into_owned());
        out.push('/');
        out.push_str(&key);
        out.push('=');
        out.push_str(&value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::X509Name;

    #[test]
    fn oneline_matches_grid_tools() {
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("DC", "org").unwrap();
        name.append_entry_by_text("DC", "example").unwrap();
        name.append_entry_by_text("O", "ARC-CI").unwrap();
        name.append_entry_by_text("CN", "CI Test User").unwrap();
        let name = name.build();
        assert_eq!(
            oneline(&name),
            "/DC=org/DC=example/O=ARC-CI/CN=CI Test User"
        );
    }
}
