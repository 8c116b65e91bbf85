//! The one HTTP client Sloop uses for catalogs and images.
//!
//! TLS is always verified, against the system's roots plus the grid trust anchors in the CA
//! folder (grid servers often carry IGTF host certificates). vmcatcher downloads with
//! `wget --no-check-certificate`; Sloop does not. Every step has a timeout; redirects are
//! followed a few times and a loop is an error.

use std::path::Path;
use std::time::Duration;

/// How long to wait for a connection, and for the next bytes of a response.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed before giving up: enough for mirrors, short of a loop.
pub const MAX_REDIRECTS: usize = 8;

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot set up HTTPS")]
    Build(#[source] reqwest::Error),
}

/// A client trusting the system roots and every CA certificate (`*.0`) in `anchors`.
pub fn client(anchors: &Path) -> Result<reqwest::Client, HttpError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("sloop/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .https_only(false);
    for certificate in anchor_certificates(anchors) {
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().map_err(HttpError::Build)
}

pub(crate) fn anchor_certificates(anchors: &Path) -> Vec<reqwest::Certificate> {
    let Ok(entries) = std::fs::read_dir(anchors) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // `<hash>.0`, `<hash>.1`: certificates; `<hash>.r0`: CRLs, not for TLS.
        let is_certificate = name
            .rsplit_once('.')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_certificate {
            continue;
        }
        match std::fs::read(entry.path())
            .ok()
            .and_then(|pem| reqwest::Certificate::from_pem(&pem).ok())
        {
            Some(certificate) => out.push(certificate),
            None => {
                tracing::debug!(file = %entry.path().display(), "not a PEM certificate; skipped for TLS")
            }
        }
    }
    out
}

/// A one-line reason for a failed request, naming the URL without repeating reqwest's chain.
pub fn describe(error: &reqwest::Error) -> String {
    if error.is_redirect() {
        return format!("more than {MAX_REDIRECTS} redirects (a redirect loop?)");
    }
    if error.is_timeout() {
        return "the server did not answer in time".into();
    }
    if error.is_connect() {
        let mut source = std::error::Error::source(error);
        let mut last = String::from("cannot connect");
        while let Some(cause) = source {
            last = cause.to_string();
            source = cause.source();
        }
        return format!("cannot connect: {last}");
    }
    if let Some(status) = error.status() {
        return format!("the server answered {status}");
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
