//! Reading a proxy file the way `arcproxy -I` and `voms-proxy-info` do: its kind and policy,
//! whose it is, how long it lasts, its key, its VOMS attributes, and whether its chain reaches
//! the grid's trust anchors.

use std::path::{Path, PathBuf};

use openssl::pkey::{Id, PKey, Private};
use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509, X509StoreContext};
use serde::Serialize;
use time::OffsetDateTime;
use ts_rs::TS;

use super::voms::VomsAttributes;
use super::{ProxyError, openssl_reason, pem, read_secret};
use crate::time_util::{asn1_to_offset, rfc3339};
use crate::x509::oneline;

/// proxyCertInfo of RFC 3820.
pub(crate) const RFC3820_OID: &str = "1.3.6.1.5.5.7.1.14";
/// proxyCertInfo of the pre-RFC GSI-3 draft.
const GSI3_OID: &str = "1.3.6.1.4.1.3536.1.222";

/// What kind of proxy a certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export)]
pub enum ProxyKind {
    /// RFC 3820, what current tools make.
    Rfc3820,
    /// The GSI-3 draft (Globus Toolkit 3).
    Gsi3,
    /// GSI-2 "legacy" (subject ending `CN=proxy` or `CN=limited proxy`).
    Legacy,
}

/// The rights a proxy passes on (its policy language).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export)]
pub enum ProxyPolicy {
    /// All of the user's rights (id-ppl-inheritAll): the usual proxy.
    Impersonation,
    /// Cannot start jobs (Globus limited proxy).
    Limited,
    /// No rights of the user (id-ppl-independent).
    Independent,
    /// id-ppl-anyLanguage.
    AnyLanguage,
    /// A policy language Sloop does not know; only its owner's services can use it.
    Restricted,
}

/// Whether the proxy's chain reaches one of the grid's trust anchors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ChainCheck {
    pub verified: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// The anchors' folder (`X509_CERT_DIR`).
    pub anchors: PathBuf,
}

/// What a proxy file says. Metadata only: never the key or the certificate's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ProxyInfo {
    pub path: PathBuf,
    pub kind: ProxyKind,
    pub policy: ProxyPolicy,
    /// How many further proxies it may sign; `None` for no limit.
    pub path_length: Option<u32>,
    /// The proxy certificate's subject, oneline form.
    pub subject: String,
    pub issuer: String,
    /// The user: the end-entity certificate's subject.
    pub identity: String,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// Until the proxy expires; negative once it has.
    #[ts(type = "number")]
    pub seconds_left: i64,
    /// `RSA`, `EC`, …
    pub key_algorithm: String,
    pub key_bits: u32,
    /// As OpenSSL names it, e.g. `sha256WithRSAEncryption`.
    pub signature_algorithm: String,
    /// Certificates in the file, the proxy included.
    pub chain_length: u32,
    pub chain: ChainCheck,
    /// The VOMS attribute certificates, one per VO.
    pub voms: Vec<VomsAttributes>,
    /// Set when the VOMS extension is there but cannot be read.
    pub voms_error: Option<String>,
}

impl ProxyInfo {
    /// The VO of the first VOMS attribute certificate, if any.
    pub fn vo(&self) -> Option<&str> {
        self.voms.first().map(|v| v.vo.as_str())
    }

    /// Whether it is still valid at `now`.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        time::OffsetDateTime::parse(
            &self.not_after,
            &time::format_description::well_known::Rfc3339,
        )
        .is_ok_and(|until| now < until)
    }
}

/// A proxy file, parsed: the certificates in file order and the key. Dropping it frees the key
/// (OpenSSL clears key memory on free).
pub(crate) struct ProxyFile {
    pub certificates: Vec<X509>,
    pub key: PKey<Private>,
    /// The file's bytes these were parsed from: what gets copied, so that what is placed is
    /// what was checked. Wiped when dropped.
    pub bytes: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ProxyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyFile")
            .field("certificates", &self.certificates.len())
            .finish_non_exhaustive()
    }
}

/// Reads and checks the proxy at `path` against the anchors in `anchors`; `Ok(None)` when there
/// is no file. An expired proxy is read (it says so by `seconds_left`); a file that is not a
/// usable proxy is an error naming what is wrong.
pub fn inspect(
    path: &Path,
    anchors: &Path,
    now: OffsetDateTime,
) -> Result<Option<ProxyInfo>, ProxyError> {
    let Some(file) = read(path)? else {
        return Ok(None);
    };
    describe(path, &file, anchors, now).map(Some)
}

/// The user behind a chain that starts with a proxy: the first certificate after it that is not
/// itself a proxy (the end-entity certificate); without one, the proxy's subject without its
/// generated names. A chain that starts with a user's own certificate gives that certificate.
pub(crate) fn identity_of(certificates: &[X509]) -> String {
    let is_proxy = |c: &X509| {
        c.to_der()
            .ok()
            .is_some_and(|d| matches!(classify(&d), Ok(Some(_))))
    };
    match certificates.split_first() {
        None => String::new(),
        Some((first, _)) if !is_proxy(first) => oneline(first.subject_name()),
        Some((first, rest)) => rest
            .iter()
            .find(|c| !is_proxy(c))
            .map(|c| oneline(c.subject_name()))
            .unwrap_or_else(|| strip_proxy_names(&oneline(first.subject_name()))),
    }
}

/// Reads the proxy file at `path`: certificates, then the key, then the chain. `Ok(None)` when
/// there is no file.
pub(crate) fn read(path: &Path) -> Result<Option<ProxyFile>, ProxyError> {
    let bytes = read_secret(path).map_err(|source| ProxyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    check_owner(path)?;
    let malformed = |reason: String| ProxyError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let blocks = pem::blocks(&bytes).map_err(malformed)?;
    if blocks.is_empty() {
        return Err(malformed("no PEM certificate in it".into()));
    }
    let mut certificates = Vec::new();
    let mut key = None;
    for block in &blocks {
        match block.label {
            "CERTIFICATE" => certificates.push(X509::from_pem(block.text).map_err(|e| {
                malformed(format!(
                    "certificate {} is damaged: {}",
                    certificates.len() + 1,
                    openssl_reason(&e)
                ))
            })?),
            "RSA PRIVATE KEY" | "PRIVATE KEY" | "EC PRIVATE KEY" if key.is_none() => {
                // A proxy's key is never encrypted; the callback refuses to ask for a passphrase.
                let parsed = PKey::private_key_from_pem_callback(block.text, |_| Ok(0))
                    .map_err(|_| malformed("its private key is damaged or encrypted".into()))?;
                key = Some(parsed);
            }
            other => return Err(malformed(format!("unexpected {other} block"))),
        }
    }
    if certificates.is_empty() {
        return Err(malformed("no PEM certificate in it".into()));
    }
    let key = key.ok_or_else(|| ProxyError::NoKey {
        path: path.to_path_buf(),
    })?;
    let public = certificates[0]
        .public_key()
        .map_err(|e| malformed(openssl_reason(&e)))?;
    if !public.public_eq(&key) {
        return Err(ProxyError::WrongKey {
            path: path.to_path_buf(),
        });
    }
    Ok(Some(ProxyFile {
        certificates,
        key,
        bytes,
    }))
}

/// Like grid tools, Sloop uses only a proxy that is the user's and readable by nobody else:
/// another local user could have planted one in /tmp.
fn check_owner(path: &Path) -> Result<(), ProxyError> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path).map_err(|source| ProxyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if metadata.uid() != nix::unistd::getuid().as_raw() || metadata.mode() & 0o077 != 0 {
        return Err(ProxyError::Permissions {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

pub(crate) fn describe(
    path: &Path,
    file: &ProxyFile,
    anchors: &Path,
    now: OffsetDateTime,
) -> Result<ProxyInfo, ProxyError> {
    let proxy = &file.certificates[0];
    let malformed = |reason: String| ProxyError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let der = proxy.to_der().map_err(|e| malformed(openssl_reason(&e)))?;
    let Some(classified) = classify(&der).map_err(malformed)? else {
        return Err(ProxyError::NotAProxy {
            path: path.to_path_buf(),
            subject: oneline(proxy.subject_name()),
        });
    };
    let identity = identity_of(&file.certificates);
    let not_after = asn1_to_offset(proxy.not_after());
    let (voms, voms_error) = match super::voms::from_certificate(&der, now) {
        Ok(voms) => (voms, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Ok(ProxyInfo {
        path: path.to_path_buf(),
        kind: classified.0,
        policy: classified.1,
        path_length: classified.2,
        subject: oneline(proxy.subject_name()),
        issuer: oneline(proxy.issuer_name()),
        identity,
        not_before: rfc3339(asn1_to_offset(proxy.not_before())),
        not_after: rfc3339(not_after),
        seconds_left: (not_after - now).whole_seconds(),
        key_algorithm: key_algorithm(file.key.id()),
        key_bits: file.key.bits(),
        signature_algorithm: proxy
            .signature_algorithm()
            .object()
            .nid()
            .long_name()
            .map_or_else(
                |_| proxy.signature_algorithm().object().to_string(),
                str::to_string,
            ),
        chain_length: u32::try_from(file.certificates.len()).unwrap_or(u32::MAX),
        chain: check_chain(&file.certificates, anchors, now),
        voms,
        voms_error,
    })
}

/// The kind, policy and path length of a proxy certificate; `None` for a certificate that is not
/// a proxy.
fn classify(der: &[u8]) -> Result<Option<(ProxyKind, ProxyPolicy, Option<u32>)>, String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
    for extension in certificate.extensions() {
        let oid = extension.oid.to_id_string();
        let kind = match oid.as_str() {
            RFC3820_OID => ProxyKind::Rfc3820,
            GSI3_OID => ProxyKind::Gsi3,
            _ => continue,
        };
        let (policy, path_length) = proxy_cert_info(extension.value)
            .ok_or_else(|| "its proxyCertInfo extension cannot be read".to_string())?;
        return Ok(Some((kind, policy, path_length)));
    }
    // GSI-2: no extension, the subject's last CN says it.
    let last_cn = certificate
        .subject()
        .iter_common_name()
        .last()
        .and_then(|cn| cn.as_str().ok().map(str::to_string));
    Ok(match last_cn.as_deref() {
        Some("proxy") => Some((ProxyKind::Legacy, ProxyPolicy::Impersonation, None)),
        Some("limited proxy") => Some((ProxyKind::Legacy, ProxyPolicy::Limited, None)),
        _ => None,
    })
}

/// RFC 3820: `SEQUENCE { pCPathLenConstraint INTEGER OPTIONAL, proxyPolicy SEQUENCE {
/// policyLanguage OID, policy OCTET STRING OPTIONAL } }`. The GSI-3 draft puts the policy first
/// and the path length in `[1]`; both are read by looking at what each element is.
fn proxy_cert_info(value: &[u8]) -> Option<(ProxyPolicy, Option<u32>)> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, info) = x509_parser::der_parser::parse_der(value).ok()?;
    let mut language = None;
    let mut path_length = None;
    for element in info.as_sequence().ok()? {
        match &element.content {
            BerObjectContent::Integer(_) => path_length = element.as_u32().ok(),
            BerObjectContent::Sequence(policy) => {
                language = policy.first()?.as_oid().ok().map(|o| o.to_id_string());
            }
            _ => {}
        }
    }
    let policy = match language?.as_str() {
        "1.3.6.1.5.5.7.21.1" => ProxyPolicy::Impersonation,
        "1.3.6.1.5.5.7.21.2" => ProxyPolicy::Independent,
        "1.3.6.1.5.5.7.21.0" => ProxyPolicy::AnyLanguage,
        "1.3.6.1.4.1.3536.1.1.1.9" => ProxyPolicy::Limited,
        _ => ProxyPolicy::Restricted,
    };
    Some((policy, path_length))
}

/// The subject without the CNs proxies add (`proxy`, `limited proxy`, or a number), for a proxy
/// file that does not carry the user's certificate.
fn strip_proxy_names(subject: &str) -> String {
    let mut out = subject;
    while let Some(i) = out.rfind("/CN=") {
        let cn = &out[i + 4..];
        let generated = cn == "proxy"
            || cn == "limited proxy"
            || (!cn.is_empty() && cn.bytes().all(|b| b.is_ascii_digit()));
        if !generated {
            break;
        }
        out = &out[..i];
    }
    out.to_string()
}

fn key_algorithm(id: Id) -> String {
    match id {
        Id::RSA => "RSA",
        Id::EC => "EC",
        Id::DSA => "DSA",
        Id::ED25519 => "Ed25519",
        _ => "other",
    }
    .to_string()
}

/// Verifies the chain as a grid service would (`openssl verify -allow_proxy_certs`).
fn check_chain(certificates: &[X509], anchors: &Path, now: OffsetDateTime) -> ChainCheck {
    let result = || -> Result<Result<(), String>, openssl::error::ErrorStack> {
        let has_anchor = std::fs::read_dir(anchors).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.len() == 10 && n.ends_with(".0"))
            })
        });
        if !has_anchor {
            return Ok(Err(format!(
                "no trust anchors in {}; install your grid's CA certificates (IGTF) or set X509_CERT_DIR",
                anchors.display()
            )));
        }
        let mut store = X509StoreBuilder::new()?;
        store
            .add_lookup(X509Lookup::hash_dir())?
            .add_dir(&anchors.to_string_lossy(), openssl::ssl::SslFiletype::PEM)?;
        let mut param = X509VerifyParam::new()?;
        param.set_time(now.unix_timestamp());
        param.set_flags(X509VerifyFlags::ALLOW_PROXY_CERTS)?;
        store.set_param(&param)?;
        let store = store.build();
        let mut chain = Stack::new()?;
        for certificate in &certificates[1..] {
            chain.push(certificate.clone())?;
        }
        let mut context = X509StoreContext::new()?;
        context.init(&store, &certificates[0], &chain, |c| {
            Ok(if c.verify_cert()? {
                Ok(())
            } else {
                Err(c.error().error_string().to_string())
            })
        })
    };
    let outcome = result().unwrap_or_else(|e| Err(openssl_reason(&e)));
    ChainCheck {
        verified: outcome.is_ok(),
        reason: outcome.err(),
        anchors: anchors.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_drops_generated_names_only() {
        assert_eq!(
            strip_proxy_names("/DC=org/CN=Jane Doe/CN=1234/CN=proxy"),
            "/DC=org/CN=Jane Doe"
        );
        assert_eq!(
            strip_proxy_names("/CN=Jane 2/CN=limited proxy"),
            "/CN=Jane 2"
        );
        assert_eq!(strip_proxy_names("/CN=Jane"), "/CN=Jane");
    }

    #[test]
    fn reads_the_usual_proxy_cert_info() {
        // No path length, inheritAll (grid-tech.md 3.1).
        let der = hex::decode("300c300a06082b06010505071501").unwrap();
        assert_eq!(
            proxy_cert_info(&der),
            Some((ProxyPolicy::Impersonation, None))
        );
        // Path length 2, independent.
        let der = hex::decode("300f020102300a06082b06010505071502").unwrap();
        assert_eq!(
            proxy_cert_info(&der),
            Some((ProxyPolicy::Independent, Some(2)))
        );
        assert_eq!(proxy_cert_info(b"\x30\x03\x02"), None);
        // What `make` writes.
        assert_eq!(
            proxy_cert_info(super::super::make::PROXY_CERT_INFO_IMPERSONATION),
            Some((ProxyPolicy::Impersonation, None))
        );
        assert_eq!(
            proxy_cert_info(super::super::make::PROXY_CERT_INFO_LIMITED),
            Some((ProxyPolicy::Limited, None))
        );
    }
}
