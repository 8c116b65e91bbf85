//! The connection to libvirt, which holds the runtime truth about machines.
//!
//! libvirt's C calls block, so every call runs on tokio's blocking pool; the async API is what
//! the rest of the core sees.

use std::sync::{Arc, Once};
use std::time::Duration;

use virt::connect::Connect;

/// How long opening a connection may take before Sloop says libvirt does not answer.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// A libvirt call failed. Carries libvirt's own message, without its code decorations.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
    /// libvirt's error number, for callers that branch on it (e.g. "no such domain").
    pub code: u32,
}

impl From<virt::error::Error> for Failure {
    fn from(error: virt::error::Error) -> Self {
        Self {
            message: error.message().trim().to_string(),
            code: error.code().to_raw(),
        }
    }
}

/// libvirt's "no domain with matching name/uuid".
pub const NO_DOMAIN: u32 = virt::sys::VIR_ERR_NO_DOMAIN;

/// What went wrong talking to libvirt.
#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("libvirt at {uri} does not answer; {fix}")]
    Unreachable {
        uri: String,
        fix: &'static str,
        #[source]
        failure: Failure,
    },
    #[error("libvirt at {uri} did not answer within {seconds} s; is the daemon stuck?")]
    Timeout { uri: String, seconds: u64 },
    #[error("libvirt refused")]
    Call(#[from] Failure),
    #[error("a libvirt worker thread failed")]
    Worker(#[source] tokio::task::JoinError),
}

/// The fix to print when no daemon answers: depends on whether one is installed at all.
fn unreachable_fix(uri: &str) -> &'static str {
    let installed = crate::programs::find_program("libvirtd").is_some()
        || crate::programs::find_program("virtqemud").is_some();
    if !installed {
        return "install it: sudo apt-get install libvirt-daemon-system qemu-system-x86";
    }
    match uri {
        "qemu:///system" => {
            "start it: sudo systemctl start libvirtd (without an init system: sudo virtlogd -d && sudo libvirtd -d)"
        }
        "qemu:///session" => {
            "check that libvirtd can start for your user (try: virsh -c qemu:///session version)"
        }
        _ => "check the URI given by SLOOP_LIBVIRT_URI or libvirt_uri in config.toml",
    }
}

/// An open connection. Cheap to clone; calls from many tasks are fine (libvirt connections are
/// thread-safe).
#[derive(Clone)]
pub struct Connection {
    conn: Arc<Connect>,
    uri: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("uri", &self.uri)
            .finish()
    }
}

fn silence_default_error_printer() {
    static ONCE: Once = Once::new();
    // libvirt prints every error to stderr unless told otherwise; Sloop reports them itself.
    ONCE.call_once(virt::error::clear_error_callback);
}

impl Connection {
    /// Opens `uri` (e.g. `qemu:///system`, `test:///default`).
    pub async fn open(uri: &str) -> Result<Self, LibvirtError> {
        silence_default_error_printer();
        let owned = uri.to_string();
        let opening = tokio::task::spawn_blocking(move || Connect::open(Some(&owned)));
        let conn = match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
            Err(_) => {
                return Err(LibvirtError::Timeout {
                    uri: uri.to_string(),
                    seconds: OPEN_TIMEOUT.as_secs(),
                });
            }
            Ok(joined) => joined.map_err(LibvirtError::Worker)?,
        };
        let conn = conn.map_err(|e| LibvirtError::Unreachable {
            uri: uri.to_string(),
            fix: unreachable_fix(uri),
            failure: e.into(),
        })?;
        // The URI libvirt resolved (an empty or aliased one becomes the real one).
        let uri = conn.uri().unwrap_or_else(|_| uri.to_string());
        Ok(Self {
            conn: Arc::new(conn),
            uri,
        })
    }

    /// The URI of this connection.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs blocking libvirt calls on the blocking pool.
    pub async fn run<T, F>(&self, call: F) -> Result<T, LibvirtError>
    where
        T: Send + 'static,
        F: FnOnce(&Connect) -> Result<T, virt::error::Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || call(&conn))
            .await
            .map_err(LibvirtError::Worker)?
            .map_err(|e| LibvirtError::Call(e.into()))
    }

    /// The libvirt daemon's version, e.g. `9.0.0`.
    pub async fn version(&self) -> Result<String, LibvirtError> {
        let number = self.run(|conn| conn.lib_version()).await?;
        Ok(format_version(number))
    }

    /// The hypervisor's (QEMU's) version, e.g. `7.2.0`.
    pub async fn hypervisor_version(&self) -> Result<String, LibvirtError> {
        let number = self.run(|conn| conn.hyp_version()).await?;
        Ok(format_version(number))
    }
}

/// libvirt encodes versions as major * 1,000,000 + minor * 1,000 + release.
pub fn format_version(number: u32) -> String {
    format!(
        "{}.{}.{}",
        number / 1_000_000,
        number / 1_000 % 1_000,
        number % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_like_libvirt_prints_them() {
        assert_eq!(format_version(9_000_000), "9.0.0");
        assert_eq!(format_version(10_008_002), "10.8.2");
    }

    #[tokio::test]
    async fn test_driver_answers() {
        let conn = Connection::open("test:///default").await.unwrap();
        assert_eq!(conn.uri(), "test:///default");
        assert!(!conn.version().await.unwrap().is_empty());
    }

    /// Regression (issue 10, bug 2): libvirt's message appears once in the whole chain.
    #[tokio::test]
    async fn a_refused_call_says_libvirts_words_once() {
        let conn = Connection::open("test:///default").await.unwrap();
        let error = conn
            .run(|c| c.lookup_domain_by_name("no-such-domain").map(|_| ()))
            .await
            .unwrap_err();
        let chain = crate::error_chain(&error);
        let words = match &error {
            LibvirtError::Call(failure) => failure.message.clone(),
            other => panic!("expected a refused call, got {other:?}"),
        };
        assert!(!words.is_empty());
        assert_eq!(chain, format!("libvirt refused: {words}"));
        assert_eq!(chain.matches(words.as_str()).count(), 1, "{chain}");
    }

    #[tokio::test]
    async fn unknown_driver_is_refused_with_its_uri() {
        let error = Connection::open("nosuchdriver:///x").await.unwrap_err();
        assert!(error.to_string().contains("nosuchdriver:///x"), "{error}");
    }
}
