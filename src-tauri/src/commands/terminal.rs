//! In-app terminals: a russh PTY channel into a running machine, streamed to xterm.js over a
//! Tauri channel. Keystrokes are never logged.

use base64::Engine as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sloop_core::machine;
use sloop_core::ssh::{TerminalOutput, TerminalSize};
use tauri::State;
use tauri::ipc::Channel;
use ts_rs::TS;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// What the window's terminal receives.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "type", rename_all = "camelCase")]
#[ts(export)]
pub enum TerminalEvent {
    /// Output bytes, base64 (terminal output is not always UTF-8).
    Data { base64: String },
    /// The shell ended; `status` is its exit status when it gave one.
    Closed { status: Option<u32> },
}

/// What a terminal is a shell in.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum TerminalTarget {
    /// A running machine on this computer, by name.
    Machine(String),
    /// An interactive run's machine at its grid site, by run id.
    Run(String),
}

/// How long a terminal on a run waits for the run to start and its machine to answer.
const RUN_SHELL_WAIT: Duration = Duration::from_secs(300);

/// Opens a shell in a running machine, here or at a grid site; returns the terminal's id.
#[tauri::command]
pub async fn terminal_open(
    state: State<'_, AppState>,
    target: TerminalTarget,
    size: TerminalSize,
    output: Channel<TerminalEvent>,
) -> Result<u32, IpcError> {
    let session = match &target {
        TerminalTarget::Machine(name) => state.core.shell(name).await?,
        TerminalTarget::Run(id) => state.core.run_shell(id, RUN_SHELL_WAIT).await?,
    };
    let terminal = session
        .open_terminal(size, move |event| {
            let event = match event {
                TerminalOutput::Data(bytes) => TerminalEvent::Data {
                    base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                },
                TerminalOutput::Closed { status } => TerminalEvent::Closed { status },
            };
            // The window went away: the shell ends when its terminal is closed or dropped.
            let _ = output.send(event);
        })
        .await
        .map_err(machine::MachineError::from)?;
    Ok(state.add_terminal(terminal).await)
}

/// Keystrokes or pasted text for terminal `id`.
#[tauri::command]
pub async fn terminal_write(
    state: State<'_, AppState>,
    id: u32,
    data: String,
) -> Result<(), IpcError> {
    if let Some(terminal) = state.terminal(id).await {
        terminal.write(data.into_bytes()).await;
    }
    Ok(())
}

/// The window's terminal changed size.
#[tauri::command]
pub async fn terminal_resize(
    state: State<'_, AppState>,
    id: u32,
    size: TerminalSize,
) -> Result<(), IpcError> {
    if let Some(terminal) = state.terminal(id).await {
        terminal.resize(size).await;
    }
    Ok(())
}

/// Ends terminal `id`'s session.
#[tauri::command]
pub async fn terminal_close(state: State<'_, AppState>, id: u32) -> Result<(), IpcError> {
    if let Some(terminal) = state.remove_terminal(id).await {
        terminal.close().await;
    }
    Ok(())
}
