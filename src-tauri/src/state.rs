//! What every command reaches through `tauri::State`: the core (files, settings, libvirt, the
//! keyring, long work, events), the log sink and the open terminals.

use sloop_core::Core;
use sloop_core::config::Config;
use sloop_core::libvirt::Connection;
use sloop_core::logging::LogSink;
use sloop_core::paths::Paths;
use std::collections::HashMap;

use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::ipc_error::IpcError;

/// The app's shared state, managed by Tauri.
#[derive(Debug)]
pub struct AppState {
    /// Everything Sloop does goes through here, as it does for the CLI.
    pub core: Core,
    pub log: LogSink,
    /// When the app started (for the log's startup time).
    pub started: std::time::Instant,
    /// Open in-app terminals by id.
    terminals: Mutex<(u32, HashMap<u32, sloop_core::ssh::Terminal>)>,
}

impl AppState {
    pub fn new(paths: Paths, log: LogSink) -> Self {
        let core = Core::new(paths);
        // A config file that does not load is not fatal: the window opens and every command
        // that needs the settings says what is wrong with the file.
        if let Err(e) = core.config() {
            tracing::error!(
                file = %core.paths().config_file().display(),
                "{}",
                sloop_core::error_chain(&e)
            );
        }
        Self {
            core,
            log,
            started: std::time::Instant::now(),
            terminals: Mutex::new((0, HashMap::new())),
        }
    }

    pub fn paths(&self) -> &Paths {
        self.core.paths()
    }

    /// The settings, or why they could not be read.
    pub fn config(&self) -> Result<&Config, IpcError> {
        Ok(self.core.config()?)
    }

    /// The libvirt connection, opened now if it is not open yet.
    pub async fn connection(&self) -> Result<Connection, IpcError> {
        Ok(self.core.connection().await?)
    }

    /// The time checks are made against.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// Keeps `terminal` and returns its new id.
    pub async fn add_terminal(&self, terminal: sloop_core::ssh::Terminal) -> u32 {
        let mut terminals = self.terminals.lock().await;
        terminals.0 += 1;
        let id = terminals.0;
        terminals.1.insert(id, terminal);
        id
    }

    pub async fn terminal(&self, id: u32) -> Option<sloop_core::ssh::Terminal> {
        self.terminals.lock().await.1.get(&id).cloned()
    }

    pub async fn remove_terminal(&self, id: u32) -> Option<sloop_core::ssh::Terminal> {
        self.terminals.lock().await.1.remove(&id)
    }
}
