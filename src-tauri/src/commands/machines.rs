//! The user's machines.

use sloop_core::machine::{self, MachineSummary};
use tauri::State;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// Every machine with the state libvirt reports for it.
#[tauri::command]
pub async fn machine_list(state: State<'_, AppState>) -> Result<Vec<MachineSummary>, IpcError> {
    let config = state.config()?;
    let conn = state.connection().await?;
    let listed = machine::list(&state.paths, config, &conn).await;
    if let Err(machine::MachineError::Libvirt(_)) = &listed {
        state.forget_connection().await;
    }
    Ok(listed?)
}
