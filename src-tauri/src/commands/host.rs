//! The host check behind the status panel.

use sloop_core::host::HostReport;
use tauri::State;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// Runs every host check; `fresh` boots the acceleration test guest again instead of using the
/// cached answer.
#[tauri::command]
pub async fn host_check(state: State<'_, AppState>, fresh: bool) -> Result<HostReport, IpcError> {
    Ok(state.core.check_host(fresh).await?)
}
