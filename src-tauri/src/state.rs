//! What every command reaches through `tauri::State`: where files are, the settings, the log sink
//! and the libvirt connection.

use sloop_core::config::Config;
use sloop_core::libvirt::Connection;
use sloop_core::logging::LogSink;
use sloop_core::paths::Paths;
use std::collections::HashMap;

use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::ipc_error::{ErrorCode, IpcError};

/// The app's shared state, managed by Tauri.
#[derive(Debug)]
pub struct AppState {
    pub paths: Paths,
    /// A config file that does not load is not fatal: the window opens and every command that
    /// needs the settings says what is wrong with the file.
    config: Result<Config, IpcError>,
    pub log: LogSink,
    /// Opened on first use and kept; a tokio mutex so that concurrent first uses open it once.
    connection: Mutex<Option<Connection>>,
    /// Long work under way, by task name, with what cancels it.
    tasks: Mutex<HashMap<String, CancellationToken>>,
    /// The OS keyring for the grid key's passphrase, chosen once (the choice asks D-Bus).
    pub keyring: sloop_core::proxy::passphrase::PassphraseStore,
    /// Open in-app terminals by id.
    terminals: Mutex<(u32, HashMap<u32, sloop_core::ssh::Terminal>)>,
}

impl AppState {
    pub fn new(paths: Paths, log: LogSink) -> Self {
        let config = Config::load(&paths.config_file()).map_err(|e| {
            tracing::error!(file = %paths.config_file().display(), "{}", IpcError::chain(&e));
            IpcError::from(e)
        });
        Self {
            paths,
            config,
            log,
            connection: Mutex::new(None),
            tasks: Mutex::new(HashMap::new()),
            keyring: sloop_core::proxy::passphrase::PassphraseStore::new(),
            terminals: Mutex::new((0, HashMap::new())),
        }
    }

    /// The settings, or why they could not be read.
    pub fn config(&self) -> Result<&Config, IpcError> {
        self.config.as_ref().map_err(Clone::clone)
    }

    /// The libvirt connection, opened now if it is not open yet.
    pub async fn connection(&self) -> Result<Connection, IpcError> {
        let uri = self.config()?.libvirt_uri();
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = Connection::open(&uri).await.map_err(IpcError::from)?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the connection, so that the next call opens a new one: after a libvirt error the
    /// daemon may have restarted, and a connection to the old one never recovers.
    pub async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    /// The time checks are made against.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// Registers the task `task`; refused while the same task runs (a second click on Download).
    pub async fn start_task(&self, task: &str) -> Result<(String, CancellationToken), IpcError> {
        let mut tasks = self.tasks.lock().await;
        if tasks.contains_key(task) {
            return Err(IpcError {
                code: ErrorCode::Busy,
                message: format!("{task} is already running"),
            });
        }
        let token = CancellationToken::new();
        tasks.insert(task.to_string(), token.clone());
        Ok((task.to_string(), token))
    }

    pub async fn end_task(&self, task: &str) {
        self.tasks.lock().await.remove(task);
    }

    /// Cancels `task`; false when it was not running.
    pub async fn cancel_task(&self, task: &str) -> bool {
        match self.tasks.lock().await.get(task) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
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
