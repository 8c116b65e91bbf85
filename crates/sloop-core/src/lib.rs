//! Sloop's core: everything Sloop does, for the CLI and the desktop app alike.
//!
//! It knows nothing of windows or terminals. Each domain is a module with its own error type;
//! long work reports through [`progress::Reporter`]. Front ends hold one [`Core`], which composes
//! the workflows. See docs/ARCHITECTURE.md.

pub mod bundle;
pub mod catalog;
pub mod config;
pub mod event;
pub mod facade;
pub mod fsutil;
pub mod host;
pub mod http;
pub mod image;
#[cfg(test)]
mod layering;
pub mod libvirt;
pub mod logging;
pub mod machine;
pub mod paths;
pub mod pki;
pub mod programs;
pub mod progress;
pub mod proxy;
pub(crate) mod qemu_img;
pub mod relay;
pub mod run;
pub mod site;
pub mod ssh;
pub mod time_util;
pub mod tutorial;
pub mod types;
pub mod watches;
pub mod x509;

pub use facade::{Core, CoreError, TaskId};

/// An error and each of its causes, joined with ": ", on one line: how errors are shown where
/// only text can go (logs, events, the host check).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
