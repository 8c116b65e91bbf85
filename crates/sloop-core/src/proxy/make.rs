//! Making an RFC 3820 proxy from the user's certificate and key, as `arcproxy` and
//! `grid-proxy-init` do (grid-tech.md 3.1), written whole and 0600 in the standard layout.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::X509Req;
use openssl::x509::extension::{ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509Extension, X509NameBuilder};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::inspect::{ProxyFile, ProxyInfo, describe};
use super::{ProxyError, openssl_reason, read_secret};
use crate::time_util::{asn1_to_offset, rfc3339};
use crate::x509::oneline;

/// proxyCertInfo, no path length, inheritAll: an ordinary impersonation proxy.
pub(crate) const PROXY_CERT_INFO_IMPERSONATION: &[u8] = &[
    0x30, 0x0c, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x15, 0x01,
];
/// proxyCertInfo, no path length, Globus limited (`1.3.6.1.4.1.3536.1.1.1.9`).
pub(crate) const PROXY_CERT_INFO_LIMITED: &[u8] = &[
    0x30, 0x0f, 0x30, 0x0d, 0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x9b, 0x50, 0x01, 0x01, 0x01,
    0x09,
];
/// Clock skew the proxy tolerates: its validity starts this much before now (as ARC does).
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// The usual default lifetime of grid tools.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// What proxy to make, from which credentials, to where.
#[derive(Debug, Clone)]
pub struct MakeRequest {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub output: PathBuf,
    /// Cut to the user certificate's own end.
    pub lifetime: Duration,
    /// RSA key size of the proxy.
    pub bits: u32,
    /// A limited proxy cannot start jobs: for data access only.
    pub limited: bool,
}

impl MakeRequest {
    /// The usual proxy: 12 hours, RSA 2048, impersonation.
    pub fn new(credentials: &super::UserCredentials, output: PathBuf) -> Self {
        Self {
            certificate: credentials.certificate.clone(),
            key: credentials.key.clone(),
            output,
            lifetime: DEFAULT_LIFETIME,
            bits: 2048,
            limited: false,
        }
    }
}

/// Whether the user's key at `path` is protected by a passphrase.
pub fn needs_passphrase(path: &Path) -> Result<bool, ProxyError> {
    let bytes = read_key_file(path)?;
    let mut asked = false;
    let parsed = PKey::private_key_from_pem_callback(&bytes, |_| {
        asked = true;
        Ok(0)
    });
    match parsed {
        Ok(_) => Ok(false),
        Err(_) if asked => Ok(true),
        Err(e) => Err(ProxyError::UserKey {
            path: path.to_path_buf(),
            reason: openssl_reason(&e),
        }),
    }
}

/// Makes a proxy as `request` says and writes it to `request.output` (0600, replacing any old
/// one at once); returns what it now holds. The passphrase is needed only for an encrypted key.
#[tracing::instrument(skip(passphrase, anchors), fields(output = %request.output.display()))]
pub fn make(
    request: &MakeRequest,
    passphrase: Option<&str>,
    anchors: &Path,
    now: OffsetDateTime,
) -> Result<ProxyInfo, ProxyError> {
    let chain = read_user_certificates(&request.certificate)?;
    let user = &chain[0];
    let key = read_user_key(&request.key, passphrase)?;
    let user_public = user.public_key().map_err(|e| ProxyError::UserCertificate {
        path: request.certificate.clone(),
        reason: openssl_reason(&e),
    })?;
    if !user_public.public_eq(&key) {
        return Err(ProxyError::KeyMismatch {
            certificate: request.certificate.clone(),
            key: request.key.clone(),
        });
    }
    let user_not_before = asn1_to_offset(user.not_before());
    let user_not_after = asn1_to_offset(user.not_after());
    if now < user_not_before || now >= user_not_after {
        return Err(ProxyError::UserCertificateInvalid {
            subject: oneline(user.subject_name()),
            not_before: rfc3339(user_not_before),
            not_after: rfc3339(user_not_after),
        });
    }
    let lifetime = checked(request.lifetime.as_secs())
        .and_then(|l| time::Duration::try_from(l).ok())
        .ok_or(ProxyError::Lifetime(request.lifetime.as_secs()))?;
    let not_after = (now + lifetime).min(user_not_after);
    if not_after < now + lifetime {
        tracing::warn!(until = %rfc3339(not_after), "proxy cut to the user certificate's end");
    }
    let proxy_key = Rsa::generate(request.bits)
        .and_then(PKey::from_rsa)
        .map_err(|e| ProxyError::Signing(openssl_reason(&e)))?;
    let proxy = sign_proxy(
        user,
        &key,
        &proxy_key,
        // Never before the user's certificate: a proxy must lie within its issuer's validity.
        (now - BACKDATE).max(user_not_before),
        not_after,
        request.limited,
    )
    .map_err(|e| ProxyError::Signing(openssl_reason(&e)))?;

    // Standard layout: proxy certificate, its key (PKCS#1 for RSA, as arcproxy writes), the chain.
    let mut bytes = Zeroizing::new(Vec::new());
    let signing_failed = |e: openssl::error::ErrorStack| ProxyError::Signing(openssl_reason(&e));
    bytes.extend_from_slice(&proxy.to_pem().map_err(signing_failed)?);
    let key_pem = Zeroizing::new(
        proxy_key
            .rsa()
            .and_then(|rsa| rsa.private_key_to_pem())
            .map_err(signing_failed)?,
    );
    bytes.extend_from_slice(&key_pem);
    for certificate in &chain {
        bytes.extend_from_slice(&certificate.to_pem().map_err(signing_failed)?);
    }
    crate::fsutil::write_atomic(&request.output, &bytes, 0o600).map_err(|source| {
        ProxyError::Write {
            path: request.output.clone(),
            source,
        }
    })?;
    tracing::info!(until = %rfc3339(not_after), "proxy made");
    let mut certificates = vec![proxy];
    certificates.extend(chain);
    describe(
        &request.output,
        &ProxyFile {
            certificates,
            key: proxy_key,
            bytes,
        },
        anchors,
        now,
    )
}

fn sign_proxy<T: HasPublic>(
    issuer: &X509,
    issuer_key: &PKey<Private>,
    proxy_key: &PKeyRef<T>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    limited: bool,
) -> Result<X509, openssl::error::ErrorStack> {
    // RFC 3820: unique per issuer; the serial also names the proxy (its extra CN).
    let serial = loop {
        let candidate = rand::random::<u64>() >> 1;
        if candidate != 0 {
            break candidate;
        }
    };
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let serial_number: Asn1Integer =
        BigNum::from_dec_str(&serial.to_string())?.to_asn1_integer()?;
    builder.set_serial_number(&serial_number)?;
    // The issuer's RDNs copied entry by entry, byte-identical, then one CN.
    let mut subject = X509NameBuilder::new()?;
    for entry in issuer.subject_name().entries() {
        subject.append_entry(entry)?;
    }
    subject.append_entry_by_nid(Nid::COMMONNAME, &serial.to_string())?;
    let subject = subject.build();
    builder.set_subject_name(&subject)?;
    builder.set_issuer_name(issuer.subject_name())?;
    builder.set_pubkey(proxy_key)?;
    let from = Asn1Time::from_unix(not_before.unix_timestamp())?;
    let until = Asn1Time::from_unix(not_after.unix_timestamp())?;
    builder.set_not_before(&from)?;
    builder.set_not_after(&until)?;
    let info = if limited {
        PROXY_CERT_INFO_LIMITED
    } else {
        PROXY_CERT_INFO_IMPERSONATION
    };
    let oid = Asn1Object::from_str(super::inspect::RFC3820_OID)?;
    let value = Asn1OctetString::new_from_bytes(info)?;
    builder.append_extension(X509Extension::new_from_der(&oid, true, &value)?)?;
    builder.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .data_encipherment()
            .build()?,
    )?;
    builder.append_extension(
        ExtendedKeyUsage::new()
            .client_auth()
            .email_protection()
            .build()?,
    )?;
    builder.sign(issuer_key, MessageDigest::sha256())?;
    Ok(builder.build())
}

/// A delegation: the RFC 3820 proxy a service asked for with `csr_pem` (a PKCS#10 request for a
/// key only the service holds), signed by the user's proxy at `proxy`, valid as long as that
/// proxy, followed by the proxy's chain (never its key). What ARC's `PUT /delegations/<id>`
/// takes (grid-tech.md, arc-ce.md 6.2).
pub fn delegate(proxy: &Path, csr_pem: &[u8], now: OffsetDateTime) -> Result<String, ProxyError> {
    let file = read_valid(proxy, now)?;
    let bad_request = |e: openssl::error::ErrorStack| {
        ProxyError::Delegation(format!(
            "the site's request is not valid: {}",
            openssl_reason(&e)
        ))
    };
    let request = X509Req::from_pem(csr_pem).map_err(bad_request)?;
    let public = request.public_key().map_err(bad_request)?;
    if !request.verify(&public).map_err(bad_request)? {
        return Err(ProxyError::Delegation(
            "the site's request is not signed by its own key".into(),
        ));
    }
    let signing_failed = |e: openssl::error::ErrorStack| ProxyError::Signing(openssl_reason(&e));
    let delegated = sign_from(&file, &public, now).map_err(signing_failed)?;
    let mut pem = delegated.to_pem().map_err(signing_failed)?;
    for certificate in &file.certificates {
        pem.extend_from_slice(&certificate.to_pem().map_err(signing_failed)?);
    }
    String::from_utf8(pem).map_err(|_| ProxyError::Signing("PEM is not text".into()))
}

/// A new proxy for a running grid job, signed by the user's proxy at `proxy` and lasting as
/// long: a fresh key made here, the whole file (certificate, key, chain) to hand to the job. For
/// renewals that the site's delegation cannot bring into a running job (ARC 6.17 does not
/// update a running job's proxy when its delegation is renewed).
pub fn for_job(proxy: &Path, now: OffsetDateTime) -> Result<Zeroizing<Vec<u8>>, ProxyError> {
    let file = read_valid(proxy, now)?;
    let signing_failed = |e: openssl::error::ErrorStack| ProxyError::Signing(openssl_reason(&e));
    let key = Rsa::generate(2048)
        .and_then(PKey::from_rsa)
        .map_err(signing_failed)?;
    let certificate = sign_from(&file, &key, now).map_err(signing_failed)?;
    let mut bytes = Zeroizing::new(certificate.to_pem().map_err(signing_failed)?);
    let key_pem = Zeroizing::new(
        key.rsa()
            .and_then(|rsa| rsa.private_key_to_pem())
            .map_err(signing_failed)?,
    );
    bytes.extend_from_slice(&key_pem);
    for certificate in &file.certificates {
        bytes.extend_from_slice(&certificate.to_pem().map_err(signing_failed)?);
    }
    Ok(bytes)
}

/// The user's proxy, refused when it has expired.
fn read_valid(proxy: &Path, now: OffsetDateTime) -> Result<super::inspect::ProxyFile, ProxyError> {
    let file = super::inspect::read(proxy)?.ok_or_else(|| ProxyError::Read {
        path: proxy.to_path_buf(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let not_after = asn1_to_offset(file.certificates[0].not_after());
    if now >= not_after {
        return Err(ProxyError::Expired {
            path: proxy.to_path_buf(),
            not_after: rfc3339(not_after),
        });
    }
    Ok(file)
}

/// A full proxy for `public`, issued by the user's proxy, lasting as long as it.
fn sign_from<T: HasPublic>(
    file: &super::inspect::ProxyFile,
    public: &PKeyRef<T>,
    now: OffsetDateTime,
) -> Result<X509, openssl::error::ErrorStack> {
    let issuer = &file.certificates[0];
    sign_proxy(
        issuer,
        &file.key,
        public,
        (now - BACKDATE).max(asn1_to_offset(issuer.not_before())),
        asn1_to_offset(issuer.not_after()),
        false,
    )
}

/// The user's certificate, then any chain the file holds after it.
pub(crate) fn read_user_certificates(path: &Path) -> Result<Vec<X509>, ProxyError> {
    let invalid = |reason: String| ProxyError::UserCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = fs_err::read(path).map_err(|e| {
        invalid(if e.kind() == std::io::ErrorKind::NotFound {
            "no such file; put it there or set X509_USER_CERT".to_string()
        } else {
            e.kind().to_string()
        })
    })?;
    let chain = X509::stack_from_pem(&bytes).map_err(|e| invalid(openssl_reason(&e)))?;
    if chain.is_empty() {
        return Err(invalid("no PEM certificate in it".to_string()));
    }
    Ok(chain)
}

fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, ProxyError> {
    let unreadable = |reason: String| ProxyError::UserKey {
        path: path.to_path_buf(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|e| {
        unreadable(if e.kind() == std::io::ErrorKind::NotFound {
            "no such file; put it there or set X509_USER_KEY".to_string()
        } else {
            e.kind().to_string()
        })
    })?;
    // Grid tools refuse a key others can read; so does Sloop.
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(ProxyError::KeyPermissions {
            path: path.to_path_buf(),
        });
    }
    read_secret(path)
        .map_err(|e| unreadable(e.kind().to_string()))?
        .ok_or_else(|| unreadable("no such file".to_string()))
}

pub(crate) fn read_user_key(
    path: &Path,
    passphrase: Option<&str>,
) -> Result<PKey<Private>, ProxyError> {
    let bytes = read_key_file(path)?;
    let mut asked = false;
    let parsed = PKey::private_key_from_pem_callback(&bytes, |buffer| {
        asked = true;
        let Some(passphrase) = passphrase else {
            return Ok(0);
        };
        let passphrase = passphrase.as_bytes();
        if passphrase.len() > buffer.len() {
            return Ok(0);
        }
        buffer[..passphrase.len()].copy_from_slice(passphrase);
        Ok(passphrase.len())
    });
    match parsed {
        Ok(key) => Ok(key),
        Err(_) if asked && passphrase.is_none() => Err(ProxyError::PassphraseNeeded {
            path: path.to_path_buf(),
        }),
        Err(_) if asked => Err(ProxyError::WrongPassphrase {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(ProxyError::UserKey {
            path: path.to_path_buf(),
            reason: openssl_reason(&e),
        }),
    }
}

/// A proxy lifetime that is not one (see [`parse_lifetime`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lifetime {0:?} is not valid; use e.g. 12h, 90m, 2d or 12:00 (a minute to a year)")]
pub struct InvalidLifetime(pub String);

/// A lifetime as grid tools take it: `12h`, `90m`, `2d`, `43200` (seconds) or `HH:MM`
/// (voms-proxy-init's `--valid`).
pub fn parse_lifetime(text: &str) -> Result<Duration, InvalidLifetime> {
    let text = text.trim();
    let invalid = || InvalidLifetime(text.to_string());
    if let Some((hours, minutes)) = text.split_once(':') {
        let hours: u64 = hours.parse().map_err(|_| invalid())?;
        let minutes: u64 = minutes.parse().map_err(|_| invalid())?;
        if minutes >= 60 {
            return Err(invalid());
        }
        return checked(hours * 3600 + minutes * 60).ok_or_else(invalid);
    }
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit.to_ascii_lowercase().as_str() {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => return Err(invalid()),
    };
    checked(seconds).ok_or_else(invalid)
}

/// Between a minute and a year: anything else is a typo.
fn checked(seconds: u64) -> Option<Duration> {
    (60..=366 * 86_400)
        .contains(&seconds)
        .then(|| Duration::from_secs(seconds))
}

/// A grid tool that can add VOMS attributes, which needs a VOMS server to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VomsTool {
    /// `voms-proxy-init` (VOMS clients).
    VomsProxyInit,
    /// `arcproxy` (NorduGrid ARC client).
    Arcproxy,
}

impl VomsTool {
    /// The first of the tools installed on this host.
    pub fn find() -> Option<Self> {
        [Self::VomsProxyInit, Self::Arcproxy]
            .into_iter()
            .find(|tool| crate::programs::find_program(tool.program()).is_some())
    }

    pub fn program(self) -> &'static str {
        match self {
            Self::VomsProxyInit => "voms-proxy-init",
            Self::Arcproxy => "arcproxy",
        }
    }
}

/// Makes a VOMS proxy with `tool`, which asks the VO's VOMS server (from the host's `vomses`
/// configuration) for attributes. The passphrase goes to the tool's standard input, never to
/// its command line. The tool's own message is returned when it fails.
#[tracing::instrument(skip(passphrase, anchors), fields(output = %request.output.display()))]
pub async fn make_with_voms(
    tool: VomsTool,
    request: &MakeRequest,
    vo: &str,
    passphrase: Option<&str>,
    anchors: &Path,
) -> Result<ProxyInfo, ProxyError> {
    use tokio::io::AsyncWriteExt as _;
    if request.limited {
        return Err(ProxyError::Tool {
            tool: tool.program(),
            message: "a limited VOMS proxy is not offered; leave out --limited".to_string(),
        });
    }
    let seconds = checked(request.lifetime.as_secs())
        .ok_or(ProxyError::Lifetime(request.lifetime.as_secs()))?
        .as_secs();
    // The tool writes beside the proxy, and only a proxy that reads well replaces the old one:
    // a failing or killed tool leaves the user's proxy as it was.
    let folder = request
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let staged = tempfile::Builder::new()
        .prefix(".sloop-voms-")
        .tempfile_in(folder)
        .map_err(|source| ProxyError::Write {
            path: request.output.clone(),
            source,
        })?;
    let staged_path = staged.path().to_path_buf();
    let mut command = tokio::process::Command::new(tool.program());
    match tool {
        VomsTool::VomsProxyInit => {
            command
                .arg("--voms")
                .arg(vo)
                .arg("--rfc")
                .arg("--valid")
                .arg(format!("{}:{:02}", seconds / 3600, (seconds % 3600) / 60))
                .arg("--cert")
                .arg(&request.certificate)
                .arg("--key")
                .arg(&request.key)
                .arg("--out")
                .arg(&staged_path)
                .arg("--pwstdin");
        }
        VomsTool::Arcproxy => {
            command
                .arg("-S")
                .arg(vo)
                .arg("-C")
                .arg(&request.certificate)
                .arg("-K")
                .arg(&request.key)
                .arg("-P")
                .arg(&staged_path)
                .arg("-c")
                .arg(format!("validityPeriod={seconds}"))
                .args(["-p", "key=stdin"]);
        }
    }
    command
        .env("X509_CERT_DIR", anchors)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let failed = |message: String| ProxyError::Tool {
        tool: tool.program(),
        message,
    };
    let mut child = command.spawn().map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let line = Zeroizing::new(format!("{}\n", passphrase.unwrap_or("")));
        // A tool that needs no passphrase may exit before reading it.
        let _ = stdin.write_all(line.as_bytes()).await;
    }
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .map_err(|_| failed("no answer within 2 minutes".to_string()))?
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // The tools print their reason last; before it come notes (identity, random seed file).
        let message = text
            .lines()
            .map(str::trim)
            .rfind(|l| {
                !l.is_empty()
                    && !l.starts_with("Function:")
                    && !l.starts_with("Your identity:")
                    && !l.contains(".rnd")
            })
            .unwrap_or("it failed without a message")
            .to_string();
        return Err(failed(message));
    }
    // Checked where the tool wrote it; only then does it replace the user's proxy.
    let mut made = super::inspect(&staged_path, anchors, OffsetDateTime::now_utc())?
        .ok_or_else(|| failed("it wrote no proxy".to_string()))?;
    fs_err::set_permissions(&staged_path, std::fs::Permissions::from_mode(0o600)).map_err(
        |source| ProxyError::Write {
            path: request.output.clone(),
            source,
        },
    )?;
    staged
        .persist(&request.output)
        .map_err(|e| ProxyError::Write {
            path: request.output.clone(),
            source: e.error,
        })?;
    made.path = request.output.clone();
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_as_grid_tools_write_them() {
        assert_eq!(parse_lifetime("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_lifetime("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_lifetime("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_lifetime("43200"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_lifetime("12:30"), Ok(Duration::from_secs(45_000)));
        for bad in ["", "h", "12x", "1:75", "-3h", "10s", "400d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?}");
        }
    }
}
