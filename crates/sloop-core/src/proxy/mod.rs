//! The user's grid proxy certificate (RFC 3820): where grid tools keep it, and what it says.
//!
//! The file holds a private key: only its certificates are ever parsed or shown, and neither
//! its content nor parts of it reach a log, an error message or the UI.

use std::path::{Path, PathBuf};

use openssl::x509::X509;
use serde::Serialize;
use ts_rs::TS;

/// Where grid tools look for the proxy: `X509_USER_PROXY`, else `/tmp/x509up_u<uid>`.
pub fn default_path() -> PathBuf {
    std::env::var_os("X509_USER_PROXY")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/x509up_u{}", nix::unistd::getuid())))
}

/// The first facts about a proxy: whose it is and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ProxySummary {
    pub path: PathBuf,
    /// The proxy certificate's subject, oneline form.
    pub subject: String,
    /// When it expires, RFC 3339.
    pub not_after: String,
    /// Negative once expired.
    #[ts(type = "number")]
    pub seconds_left: i64,
}

/// The proxy file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot read the proxy file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate; make a new proxy (arcproxy or voms-proxy-init)")]
    NotACertificate { path: PathBuf },
}

/// Reads the proxy at `path`; `Ok(None)` when there is no file.
pub fn summarize(path: &Path) -> Result<Option<ProxySummary>, ProxyError> {
    // The file holds the proxy's private key: wiped from memory when dropped.
    let bytes = match std::fs::read(path) {
        Ok(bytes) => zeroize::Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ProxyError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    // The first PEM certificate is the proxy itself; the key block is skipped, never parsed here.
    let certificate = X509::from_pem(&bytes).map_err(|_| ProxyError::NotACertificate {
        path: path.to_path_buf(),
    })?;
    let not_after = crate::time_util::asn1_to_offset(certificate.not_after());
    let now = time::OffsetDateTime::now_utc();
    Ok(Some(ProxySummary {
        path: path.to_path_buf(),
        subject: crate::x509::oneline(certificate.subject_name()),
        not_after: crate::time_util::rfc3339(not_after),
        seconds_left: (not_after - now).whole_seconds(),
    }))
}
