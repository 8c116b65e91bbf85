//! The log view's history; new lines arrive as events (see `events.rs`).

use sloop_core::logging::LogLine;
use tauri::State;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// The latest `limit` log lines, oldest first.
#[tauri::command]
pub async fn log_recent(state: State<'_, AppState>, limit: u32) -> Result<Vec<LogLine>, IpcError> {
    Ok(state.log.recent(limit as usize))
}
