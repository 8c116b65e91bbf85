//! Sloop's core: everything Sloop does, for the CLI and the desktop app alike.
//!
//! It knows nothing of windows or terminals. Each domain is a module with its own error type;
//! long work reports through [`event::Reporter`]. See docs/ARCHITECTURE.md.

pub mod catalog;
pub mod config;
pub mod event;
pub mod fsutil;
pub mod host;
pub mod http;
pub mod image;
pub mod libvirt;
pub mod logging;
pub mod machine;
pub mod paths;
pub mod pki;
pub mod proxy;
pub mod ssh;
pub mod time_util;
pub mod x509;
