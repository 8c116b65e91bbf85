//! The user's machines: list, create, power, delete, console. State changes also arrive as
//! `machines` events (see `events::watch_machines`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sloop_core::machine::manifest::Resources;
use sloop_core::machine::{self, CreateRequest, MachineSummary};
use tauri::{AppHandle, State};
use ts_rs::TS;

use crate::events;
use crate::ipc_error::IpcError;
use crate::state::AppState;

/// How long a start from the app waits for the machine's SSH server.
const START_WAIT: Duration = Duration::from_secs(300);

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

/// Makes a machine from a certified, downloaded image; it is left stopped.
#[tauri::command]
pub async fn machine_create(
    app: AppHandle,
    state: State<'_, AppState>,
    request: CreateMachine,
) -> Result<MachineSummary, IpcError> {
    let config = state.config()?;
    let conn = state.connection().await?;
    let request = CreateRequest {
        name: request.name,
        image: request.image,
        resources: Resources {
            vcpus: request.vcpus,
            memory_mib: request.memory_mib,
            disk_gib: request.disk_gib,
        },
        work_dir: request
            .work_dir
            .filter(|d| !d.is_empty())
            .map(PathBuf::from),
    };
    let reporter = events::reporter(&app);
    let task = format!("create:{}", request.name);
    let result = machine::create(
        &state.paths,
        config,
        &conn,
        &request,
        &reporter,
        state.now(),
    )
    .await;
    events::finished(&reporter, &task, &result);
    Ok(result?)
}

/// Starts a machine and resolves once its SSH server answers with the pinned host key.
#[tauri::command]
pub async fn machine_start(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    let config = state.config()?;
    let conn = state.connection().await?;
    let reporter = events::reporter(&app);
    let result = machine::start(
        &state.paths,
        config,
        &conn,
        &name,
        Some(START_WAIT),
        &reporter,
    )
    .await;
    events::finished(&reporter, &format!("start:{name}"), &result);
    Ok(result?)
}

/// Asks the machine to shut down; forces it off after a minute.
#[tauri::command]
pub async fn machine_stop(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    let config = state.config()?;
    let conn = state.connection().await?;
    Ok(machine::stop(
        &state.paths,
        config,
        &conn,
        &name,
        machine::power::SHUTDOWN_GRACE,
    )
    .await?)
}

/// Stops the machine at once.
#[tauri::command]
pub async fn machine_force_off(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    let config = state.config()?;
    let conn = state.connection().await?;
    Ok(machine::force_off(&state.paths, config, &conn, &name).await?)
}

/// Stops, then starts again.
#[tauri::command]
pub async fn machine_restart(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    let config = state.config()?;
    let conn = state.connection().await?;
    machine::stop(
        &state.paths,
        config,
        &conn,
        &name,
        machine::power::SHUTDOWN_GRACE,
    )
    .await?;
    let reporter = events::reporter(&app);
    Ok(machine::start(
        &state.paths,
        config,
        &conn,
        &name,
        Some(START_WAIT),
        &reporter,
    )
    .await?)
}

/// Deletes the machine and its overlay. The window asks the user first.
#[tauri::command]
pub async fn machine_delete(state: State<'_, AppState>, name: String) -> Result<(), IpcError> {
    let conn = state.connection().await?;
    Ok(machine::delete(&state.paths, &conn, &name).await?)
}

/// The last 64 KiB of the machine's serial console.
#[tauri::command]
pub async fn machine_console(state: State<'_, AppState>, name: String) -> Result<String, IpcError> {
    Ok(machine::console_tail(&state.paths, &name, 64 * 1024)?)
}
