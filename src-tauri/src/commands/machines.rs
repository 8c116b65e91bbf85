//! The user's machines: list, create, power, delete, console. State changes also arrive as
//! `machines` events (see `Core::watch_machines`).

use std::path::PathBuf;

use serde::Deserialize;
use sloop_core::facade::START_WAIT;
use sloop_core::machine::manifest::Resources;
use sloop_core::machine::{self, CreateRequest, MachineSummary};
use tauri::State;
use ts_rs::TS;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// Every machine with the state libvirt reports for it.
#[tauri::command]
pub async fn machine_list(state: State<'_, AppState>) -> Result<Vec<MachineSummary>, IpcError> {
    Ok(state.core.machines().await?)
}

/// What the create dialog sends.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CreateMachine {
    pub name: String,
    /// The image's identifier.
    pub image: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    pub work_dir: Option<String>,
}

impl From<CreateMachine> for CreateRequest {
    fn from(form: CreateMachine) -> Self {
        Self {
            name: form.name,
            image: form.image,
            resources: Resources {
                vcpus: form.vcpus,
                memory_mib: form.memory_mib,
                disk_gib: form.disk_gib,
            },
            // The form sends an empty field for "no work directory".
            work_dir: form.work_dir.filter(|d| !d.is_empty()).map(PathBuf::from),
            overlay: None,
            origin: None,
        }
    }
}

/// Makes a machine from a certified, downloaded image; it is left stopped.
#[tauri::command]
pub async fn machine_create(
    state: State<'_, AppState>,
    request: CreateMachine,
) -> Result<MachineSummary, IpcError> {
    Ok(state.core.create(&request.into()).await?)
}

/// Starts a machine and resolves once its SSH server answers with the pinned host key.
#[tauri::command]
pub async fn machine_start(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    Ok(state.core.start(&name, Some(START_WAIT)).await?)
}

/// Asks the machine to shut down; forces it off after a minute.
#[tauri::command]
pub async fn machine_stop(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    Ok(state
        .core
        .stop(&name, machine::power::SHUTDOWN_GRACE)
        .await?)
}

/// Stops the machine at once.
#[tauri::command]
pub async fn machine_force_off(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    Ok(state.core.force_off(&name).await?)
}

/// Stops, then starts again.
#[tauri::command]
pub async fn machine_restart(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    Ok(state.core.restart(&name).await?)
}

/// Deletes the machine and its overlay. The window asks the user first.
#[tauri::command]
pub async fn machine_delete(state: State<'_, AppState>, name: String) -> Result<(), IpcError> {
    Ok(state.core.delete(&name).await?)
}

/// The last 64 KiB of the machine's serial console.
#[tauri::command]
pub async fn machine_console(state: State<'_, AppState>, name: String) -> Result<String, IpcError> {
    Ok(machine::console_tail(state.paths(), &name, 64 * 1024)?)
}
