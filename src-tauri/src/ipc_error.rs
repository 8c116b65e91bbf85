//! The one error type commands return to the window: a stable `code` the UI may branch on and a
//! one-line `message` made of the core error's whole chain.

use serde::Serialize;
use sloop_core::bundle::BundleError;
use sloop_core::catalog::CatalogError;
use sloop_core::config::ConfigError;
use sloop_core::image::{ImageError, pull::PullError};
use sloop_core::libvirt::LibvirtError;
use sloop_core::machine::MachineError;
use ts_rs::TS;

/// Which part failed. Stable: the UI may branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum ErrorCode {
    /// The config file could not be read or is not valid.
    Config,
    /// libvirt could not be reached or refused a call.
    Libvirt,
    /// A machine's files could not be read.
    Machine,
    /// A catalog could not be added, read or refreshed (including a refused list).
    Catalog,
    /// An image could not be found, pulled or removed.
    Image,
    /// The work was cancelled by the user; nothing to report as a failure.
    Cancelled,
    /// The same work is already running.
    Busy,
    /// The proxy could not be read, made, placed or removed.
    Proxy,
    /// The grid key needs its passphrase, or the one given does not open it: ask for it.
    Passphrase,
    /// A bundle could not be made, read, verified or imported.
    Bundle,
    /// A bundle is unsigned, or signed by someone not imported from before: ask the user, then
    /// import again with their consent.
    BundleConsent,
    /// A grid site could not be added, reached or asked, or refused the user.
    Site,
    /// A grid run could not be submitted, followed, cancelled, cleaned or fetched.
    Run,
    /// A tutorial file could not be read, verified, opened or reset.
    Tutorial,
    /// The tutorial is open here from another version of its file: ask the user, then open
    /// again with `replace`.
    TutorialVersion,
    /// A fault inside Sloop (a worker thread panicked).
    Internal,
}

/// What a failed command returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct IpcError {
    pub code: ErrorCode,
    /// The error and each of its causes, joined with ": ".
    pub message: String,
}

impl IpcError {
    pub fn new(code: ErrorCode, error: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            code,
            message: Self::chain(error),
        }
    }

    /// `error` followed by its sources, joined with ": ".
    pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
        sloop_core::error_chain(error)
    }
}

impl From<tokio::task::JoinError> for IpcError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self {
            code: ErrorCode::Internal,
            message: format!("the work stopped unexpectedly ({error}); the log may say more"),
        }
    }
}

impl From<sloop_core::CoreError> for IpcError {
    fn from(error: sloop_core::CoreError) -> Self {
        use sloop_core::CoreError as E;
        match error {
            E::Config(e) => Self::new(ErrorCode::Config, &*e),
            E::Libvirt(e) => e.into(),
            E::Machine(e) => e.into(),
            E::Catalog(e) => e.into(),
            E::Image(e) => e.into(),
            E::Proxy(e) => e.into(),
            E::Passphrase(e) => e.into(),
            E::Bundle(e) => e.into(),
            E::Site(e) => Self::new(ErrorCode::Site, &e),
            E::Run(e @ sloop_core::run::RunError::Cancelled) => Self::new(ErrorCode::Cancelled, &e),
            E::Run(e) => Self::new(ErrorCode::Run, &e),
            E::Tutorial(e @ sloop_core::tutorial::TutorialError::Cancelled) => {
                Self::new(ErrorCode::Cancelled, &e)
            }
            E::Tutorial(e @ sloop_core::tutorial::TutorialError::OtherVersion { .. }) => {
                Self::new(ErrorCode::TutorialVersion, &e)
            }
            E::Tutorial(e) => Self::new(ErrorCode::Tutorial, &e),
            e @ E::Busy(_) => Self::new(ErrorCode::Busy, &e),
            e @ E::NoVomsTool => Self::new(ErrorCode::Proxy, &e),
            e @ E::Internal(_) => Self::new(ErrorCode::Internal, &e),
        }
    }
}

impl From<ConfigError> for IpcError {
    fn from(error: ConfigError) -> Self {
        Self::new(ErrorCode::Config, &error)
    }
}

impl From<LibvirtError> for IpcError {
    fn from(error: LibvirtError) -> Self {
        Self::new(ErrorCode::Libvirt, &error)
    }
}

impl From<MachineError> for IpcError {
    fn from(error: MachineError) -> Self {
        match error {
            MachineError::Libvirt(e) => e.into(),
            other => Self::new(ErrorCode::Machine, &other),
        }
    }
}

impl From<sloop_core::ssh::SshError> for IpcError {
    fn from(error: sloop_core::ssh::SshError) -> Self {
        Self::new(ErrorCode::Machine, &error)
    }
}

impl From<CatalogError> for IpcError {
    fn from(error: CatalogError) -> Self {
        Self::new(ErrorCode::Catalog, &error)
    }
}

impl From<ImageError> for IpcError {
    fn from(error: ImageError) -> Self {
        match error {
            ImageError::Catalog(e) => e.into(),
            ImageError::Pull(e @ PullError::Cancelled { .. }) => {
                Self::new(ErrorCode::Cancelled, &e)
            }
            other => Self::new(ErrorCode::Image, &other),
        }
    }
}

impl From<BundleError> for IpcError {
    fn from(error: BundleError) -> Self {
        match error {
            BundleError::Machine(e) => e.into(),
            BundleError::Image(e) => e.into(),
            BundleError::Catalog(e) => e.into(),
            e @ BundleError::Cancelled => Self::new(ErrorCode::Cancelled, &e),
            e @ (BundleError::Unsigned { .. } | BundleError::NewSigner { .. }) => {
                Self::new(ErrorCode::BundleConsent, &e)
            }
            other => Self::new(ErrorCode::Bundle, &other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the machines folder")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn message_is_the_whole_chain() {
        let error = Outer(std::io::Error::other("permission denied"));
        let ipc = IpcError::new(ErrorCode::Machine, &error);
        assert_eq!(
            ipc.message,
            "cannot read the machines folder: permission denied"
        );
    }

    #[test]
    fn serialises_as_code_and_message() {
        let error = LibvirtError::Timeout {
            uri: "qemu:///system".into(),
            seconds: 15,
        };
        let json = serde_json::to_value(IpcError::from(error)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "code": "libvirt",
                "message": "libvirt at qemu:///system did not answer within 15 s; is the daemon stuck?"
            })
        );
    }
}
