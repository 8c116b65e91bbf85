//! The app itself: what it is (About), what the desktop asked it to open, and quitting while
//! machines run.

use serde::Serialize;
use sloop_core::machine::{self, MachineState};
use tauri::{AppHandle, State};
use ts_rs::TS;

use crate::ipc_error::IpcError;
use crate::opens::{OpenQueue, OpenRequest};
use crate::state::AppState;

/// What the About panel shows.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct About {
    pub version: String,
    /// The commit the app was built from ("unknown" outside a checkout).
    pub commit: String,
}

#[tauri::command]
pub fn app_about() -> About {
    About {
        version: env!("CARGO_PKG_VERSION").into(),
        commit: env!("SLOOP_COMMIT").into(),
    }
}

/// The window painted its first frame: logged with the time since the app started, the figure
/// `scripts/bench-package.sh` reads.
#[tauri::command]
pub fn app_painted(state: State<'_, AppState>) {
    tracing::info!(
        after_ms = state.started.elapsed().as_millis() as u64,
        "the window painted its first frame"
    );
}

/// The files and links the desktop asked the app to open since the window last asked.
#[tauri::command]
pub fn open_requests_take(queue: State<'_, OpenQueue>) -> Vec<OpenRequest> {
    let requests = queue.take();
    for request in &requests {
        tracing::info!(kind = ?request.kind, location = %request.location, "the window opens");
    }
    requests
}

/// The names of the machines that run now: closing the window asks about them first.
pub async fn running_machines(state: &AppState) -> Result<Vec<String>, IpcError> {
    Ok(state
        .core
        .machines()
        .await?
        .into_iter()
        .filter(|m| m.state == MachineState::Running)
        .map(|m| m.name)
        .collect())
}

/// Quits the app, after shutting the running machines down when `stop_machines` (each as
/// `machine stop` does, forced off after the grace time). Machines left running keep running
/// under libvirt; the next start of Sloop finds them. A machine that does not stop keeps the
/// app open and is named.
#[tauri::command]
pub async fn app_quit(
    app: AppHandle,
    state: State<'_, AppState>,
    stop_machines: bool,
) -> Result<(), IpcError> {
    if stop_machines {
        let names = running_machines(&state).await?;
        tracing::info!(
            machines = names.len(),
            "stopping the running machines before quitting"
        );
        for name in names {
            state
                .core
                .stop(&name, machine::power::SHUTDOWN_GRACE)
                .await?;
        }
    }
    app.exit(0);
    Ok(())
}
