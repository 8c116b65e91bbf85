//! Making certificates and signatures: the demo catalog's CA and endorser, and the test CAs that
//! the integration tests build for themselves.
//!
//! Only what Sloop itself needs to make: a CA, a certificate it issues, an IGTF-style trust
//! anchor folder (`<hash>.0`), and a detached S/MIME signature like `openssl smime -sign` (what
//! hepixvmitrust produces). Verification lives with the things verified (`catalog::trust`).

use std::path::Path;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Name, X509NameBuilder};

/// A certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("distinguished name {0:?} is not in the /KEY=value/... form")]
    BadName(String),
    #[error("OpenSSL refused to make the certificate or signature")]
    OpenSsl(#[from] ErrorStack),
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A certificate with its private key.
pub struct Identity {
    pub certificate: X509,
    pub key: PKey<Private>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field(
                "subject",
                &crate::x509::oneline(self.certificate.subject_name()),
            )
            .finish_non_exhaustive()
    }
}

/// What to put in a new certificate.
#[derive(Debug, Clone)]
pub struct CertificateSpec<'a> {
    /// Subject in oneline form, e.g. `/DC=org/DC=example/CN=Jane Doe`.
    pub subject: &'a str,
    /// Seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// A CA certificate (may sign others) rather than an end entity.
    pub ca: bool,
    /// Names a TLS server answers to (`DNS:`/`IP:` entries), for server certificates.
    pub server_names: &'a [&'a str],
}

/// A new 2048-bit RSA key: what grid CAs and endorsers use.
pub fn new_key() -> Result<PKey<Private>, PkiError> {
    Ok(PKey::from_rsa(Rsa::generate(2048)?)?)
}

/// Parses a oneline DN (`/C=DE/O=GermanGrid/CN=x`) into a name, keeping the order.
pub fn parse_oneline(dn: &str) -> Result<X509Name, PkiError> {
    let bad = || PkiError::BadName(dn.to_string());
    let rest = dn.strip_prefix('/').ok_or_else(bad)?;
    let mut name = X509NameBuilder::new()?;
    for part in rest.split('/') {
        let (key, value) = part.split_once('=').ok_or_else(bad)?;
        name.append_entry_by_text(key, value).map_err(|_| bad())?;
    }
    Ok(name.build())
}

/// Makes a certificate for `spec`, issued by `issuer`, or self-signed when `issuer` is `None`.
pub fn issue(spec: &CertificateSpec<'_>, issuer: Option<&Identity>) -> Result<Identity, PkiError> {
    let key = new_key()?;
    let subject = parse_oneline(spec.subject)?;
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&subject)?;
    builder.set_issuer_name(issuer.map_or(&subject, |i| i.certificate.subject_name()))?;
    builder.set_pubkey(&key)?;
    let not_before = Asn1Time::from_unix(spec.not_before)?;
    let not_after = Asn1Time::from_unix(spec.not_after)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    if spec.ca {
        builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        builder.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
    } else {
        builder.append_extension(BasicConstraints::new().critical().build()?)?;
        builder.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        )?;
    }
    if !spec.server_names.is_empty() {
        let mut names = SubjectAlternativeName::new();
        for entry in spec.server_names {
            match entry.split_once(':') {
                Some(("IP", ip)) => names.ip(ip),
                Some(("DNS", dns)) => names.dns(dns),
                _ => return Err(PkiError::BadName((*entry).to_string())),
            };
        }
        let context = builder.x509v3_context(issuer.map(|i| i.certificate.as_ref()), None);
        let extension = names.build(&context)?;
        builder.append_extension(extension)?;
    }
    let key_id = {
        let context = builder.x509v3_context(issuer.map(|i| i.certificate.as_ref()), None);
        SubjectKeyIdentifier::new().build(&context)?
    };
    builder.append_extension(key_id)?;
    if issuer.is_some() {
        let context = builder.x509v3_context(issuer.map(|i| i.certificate.as_ref()), None);
        let authority = AuthorityKeyIdentifier::new().keyid(false).build(&context)?;
        builder.append_extension(authority)?;
    }
    builder.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())?;
    Ok(Identity {
        certificate: builder.build(),
        key,
    })
}

/// Signs `content` like `openssl smime -sign` (detached, the signer's certificate embedded): the
/// multipart/signed document HEPiX image lists are published as.
pub fn sign_smime(content: &[u8], signer: &Identity) -> Result<Vec<u8>, PkiError> {
    let no_extra = Stack::new()?;
    let p7 = Pkcs7::sign(
        &signer.certificate,
        &signer.key,
        &no_extra,
        content,
        Pkcs7Flags::DETACHED,
    )?;
    Ok(p7.to_smime(content, Pkcs7Flags::DETACHED)?)
}

/// Writes `certificate` into `dir` as a trust anchor in the IGTF / OpenSSL hashed layout
/// (`<subject hash>.0`), the way `/etc/grid-security/certificates` holds CAs.
pub fn install_anchor(dir: &Path, certificate: &X509) -> Result<std::path::PathBuf, PkiError> {
    let path = dir.join(format!("{:08x}.0", certificate.subject_name_hash()));
    let pem = certificate.to_pem()?;
    crate::fsutil::write_atomic(&path, &pem, 0o644).map_err(|source| PkiError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::oneline;

    #[test]
    fn oneline_names_round_trip() {
        let dn = "/DC=org/DC=example/OU=Users/CN=Jane Doe/emailAddress=jane@example.org";
        assert_eq!(oneline(&parse_oneline(dn).unwrap()), dn);
        assert!(matches!(parse_oneline("CN=x"), Err(PkiError::BadName(_))));
        assert!(matches!(parse_oneline("/CN"), Err(PkiError::BadName(_))));
    }

    #[test]
    fn issued_certificate_chains_to_its_ca() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ca = issue(
            &CertificateSpec {
                subject: "/DC=invalid/CN=Test CA",
                not_before: now - 60,
                not_after: now + 3600,
                ca: true,
                server_names: &[],
            },
            None,
        )
        .unwrap();
        let leaf = issue(
            &CertificateSpec {
                subject: "/DC=invalid/CN=Endorser",
                not_before: now - 60,
                not_after: now + 3600,
                ca: false,
                server_names: &["IP:127.0.0.1", "DNS:localhost"],
            },
            Some(&ca),
        )
        .unwrap();
        assert!(leaf.certificate.verify(&ca.key).unwrap());
        assert_eq!(
            oneline(leaf.certificate.issuer_name()),
            "/DC=invalid/CN=Test CA"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = install_anchor(dir.path(), &ca.certificate).unwrap();
        assert!(path.file_name().unwrap().to_str().unwrap().ends_with(".0"));
    }
}
