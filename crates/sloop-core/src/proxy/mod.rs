//! The user's grid proxy certificate (RFC 3820): where grid tools keep it, what it says
//! ([`inspect`]), making a new one from the user's certificate ([`make`]), the key's passphrase
//! in the OS keyring ([`passphrase`]), and the VOMS attributes it carries ([`voms`]).
//!
//! A proxy file holds a private key. Only certificates are shown; the file's bytes are wiped
//! from memory after use, and neither the key, the proxy nor the passphrase reach a log, an
//! error message or the UI.

pub mod attach;
pub mod inspect;
pub mod make;
pub mod passphrase;
mod pem;
pub mod voms;
pub mod watch;

use std::path::{Path, PathBuf};

use crate::host::{self, Check, CheckId, CheckStatus};

pub use inspect::{ChainCheck, ProxyInfo, ProxyKind, ProxyPolicy, inspect};
pub use make::{MakeRequest, VomsTool, make, make_with_voms, needs_passphrase, parse_lifetime};

/// Where grid tools look for the proxy: `X509_USER_PROXY`, else `/tmp/x509up_u<uid>`.
pub fn default_path() -> PathBuf {
    std::env::var_os("X509_USER_PROXY")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/x509up_u{}", nix::unistd::getuid())))
}

/// The user's long-lived grid certificate and its key, as grid tools find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl UserCredentials {
    /// `X509_USER_CERT` and `X509_USER_KEY`, else `~/.globus/usercert.pem` and `userkey.pem`.
    pub fn from_env() -> Self {
        let globus = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(".globus");
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            certificate: var("X509_USER_CERT").unwrap_or_else(|| globus.join("usercert.pem")),
            key: var("X509_USER_KEY").unwrap_or_else(|| globus.join("userkey.pem")),
        }
    }
}

/// The VOMS servers' certificate descriptions (`<vo>/<host>.lsc`): `X509_VOMS_DIR`, else
/// `/etc/grid-security/vomsdir`.
pub fn voms_dir() -> PathBuf {
    std::env::var_os("X509_VOMS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/grid-security/vomsdir"))
}

/// The VOMS servers' addresses as VOMS clients find them: `VOMS_USERCONF`, else `~/.voms/vomses`
/// when it exists, else `/etc/vomses`.
pub fn vomses() -> PathBuf {
    if let Some(path) = std::env::var_os("VOMS_USERCONF").filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    directories::BaseDirs::new()
        .map(|b| b.home_dir().join(".voms/vomses"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/etc/vomses"))
}

/// A proxy, or the user's certificate, could not be read or made. No variant carries key
/// material or a passphrase.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a readable proxy ({reason}); make a new one with `sloop proxy init`")]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "{path} is not yours alone (another owner, or readable by others); remove it and make a new proxy with `sloop proxy init`"
    )]
    Permissions { path: PathBuf },
    #[error(
        "{path} holds no private key after its certificate; make a new proxy with `sloop proxy init`"
    )]
    NoKey { path: PathBuf },
    #[error(
        "the private key in {path} does not belong to its certificate; make a new proxy with `sloop proxy init`"
    )]
    WrongKey { path: PathBuf },
    #[error(
        "{path} is not a proxy but the certificate of {subject}; make a proxy with `sloop proxy init`"
    )]
    NotAProxy { path: PathBuf, subject: String },
    #[error("cannot read your grid certificate {path}: {reason}")]
    UserCertificate { path: PathBuf, reason: String },
    #[error("cannot read your grid key {path}: {reason}")]
    UserKey { path: PathBuf, reason: String },
    #[error("your grid key {path} can be read by other users; restrict it with `chmod 400 {path}`")]
    KeyPermissions { path: PathBuf },
    #[error("your grid key {path} is protected by a passphrase; give it")]
    PassphraseNeeded { path: PathBuf },
    #[error("the passphrase does not open your grid key {path}; try again")]
    WrongPassphrase { path: PathBuf },
    #[error(
        "your grid key {key} does not belong to your certificate {certificate}; check X509_USER_CERT and X509_USER_KEY"
    )]
    KeyMismatch { certificate: PathBuf, key: PathBuf },
    #[error(
        "your grid certificate ({subject}) is valid only from {not_before} to {not_after}; renew it with your certificate authority"
    )]
    UserCertificateInvalid {
        subject: String,
        not_before: String,
        not_after: String,
    },
    #[error("a proxy lifetime of {0} s is not possible; choose between a minute and a year")]
    Lifetime(u64),
    #[error("cannot sign the proxy: {0}")]
    Signing(String),
    #[error("your proxy {path} expired at {not_after}; make a new one with `sloop proxy init`")]
    Expired { path: PathBuf, not_after: String },
    #[error("cannot delegate your proxy: {0}")]
    Delegation(String),
    #[error("{tool} could not make a VOMS proxy: {message}")]
    Tool { tool: &'static str, message: String },
    #[error("cannot write the proxy to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The first reason in an OpenSSL error stack, without the library's internals.
fn openssl_reason(error: &openssl::error::ErrorStack) -> String {
    error
        .errors()
        .first()
        .and_then(|e| e.reason().map(str::to_string))
        .unwrap_or_else(|| "not valid".to_string())
}

/// Reads a file that may hold a private key, wiped from memory when dropped.
fn read_secret(path: &Path) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, std::io::Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(zeroize::Zeroizing::new(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The user's certificate and key, as the proxy panel shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CredentialsView {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// Both files are there.
    pub found: bool,
    /// The key is protected by a passphrase (false when it cannot be read).
    pub needs_passphrase: bool,
}

/// Everything a front end shows about the proxy: the proxy itself (or why it cannot be read),
/// how to make a new one, and when to warn.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ProxyStatus {
    pub path: PathBuf,
    /// `None` when there is no proxy file, or it cannot be read (see `error`).
    pub info: Option<ProxyInfo>,
    pub error: Option<String>,
    /// Warn when less than this is left.
    #[ts(type = "number")]
    pub warning_seconds: i64,
    pub credentials: CredentialsView,
    /// The VOMS tool found on this host (`voms-proxy-init` or `arcproxy`), if any.
    pub voms_tool: Option<String>,
    /// The key's passphrase is in the OS keyring: renewing needs no typing.
    pub passphrase_remembered: bool,
    /// The OS keyring in use, e.g. "Secret Service".
    pub keyring: String,
}

/// The proxy's status now, from the environment and `config`. Blocks on the keyring.
pub fn status(
    config: &crate::config::Config,
    keyring: &passphrase::PassphraseStore,
) -> ProxyStatus {
    let path = default_path();
    let (info, error) = match inspect(&path, &config.ca_dir(), time::OffsetDateTime::now_utc()) {
        Ok(info) => (info, None),
        Err(e) => (None, Some(crate::error_chain(&e))),
    };
    let credentials = UserCredentials::from_env();
    let credentials_key = credentials.key.clone();
    ProxyStatus {
        path,
        info,
        error,
        warning_seconds: i64::from(config.proxy_warning_minutes()) * 60,
        credentials: CredentialsView {
            found: credentials.certificate.is_file() && credentials.key.is_file(),
            needs_passphrase: needs_passphrase(&credentials.key).unwrap_or(false),
            certificate: credentials.certificate,
            key: credentials.key,
        },
        voms_tool: VomsTool::find().map(|t| t.program().to_string()),
        passphrase_remembered: keyring.recall(&credentials_key).is_ok_and(|p| p.is_some()),
        keyring: keyring.backend().to_string(),
    }
}

/// The doctor's line for the user's proxy: there, valid, how long is left.
pub fn check(anchors: &Path) -> Check {
    const TITLE: &str = "Grid proxy";
    let path = default_path();
    match inspect(&path, anchors, time::OffsetDateTime::now_utc()) {
        Ok(Some(p)) if p.seconds_left > 0 => host::check(
            CheckId::Proxy,
            TITLE,
            CheckStatus::Ok,
            format!(
                "{}: {}{}, {} left",
                p.path.display(),
                p.identity,
                p.vo().map(|vo| format!(" ({vo})")).unwrap_or_default(),
                host::human_duration(p.seconds_left)
            ),
            None,
        ),
        Ok(Some(p)) => host::check(
            CheckId::Proxy,
            TITLE,
            CheckStatus::Warning,
            format!("{}: expired at {}", p.path.display(), p.not_after),
            Some("renew it with `sloop proxy init`, arcproxy or voms-proxy-init"),
        ),
        Ok(None) => host::check(
            CheckId::Proxy,
            TITLE,
            CheckStatus::Warning,
            format!(
                "no proxy at {}; grid services will not be reachable from machines",
                path.display()
            ),
            Some("make one with `sloop proxy init`, arcproxy or voms-proxy-init"),
        ),
        Err(e) => host::check(
            CheckId::Proxy,
            TITLE,
            CheckStatus::Warning,
            e.to_string(),
            Some("make a new one with `sloop proxy init`"),
        ),
    }
}
