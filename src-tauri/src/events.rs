//! Core events to window events. Everything the core tells the window without being asked goes
//! out as one `sloop_core::event::Event` on one Tauri event name, so the UI has one listener.

use sloop_core::event::{Event, Reporter};
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

/// The Tauri event name every core event is emitted on.
pub const EVENT: &str = "sloop://event";

/// Sends every new log line to the window as `Event::Log`, for as long as the app runs.
pub fn forward_log(app: &AppHandle) {
    let mut lines = app.state::<AppState>().log.subscribe();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            match lines.recv().await {
                Ok(line) => {
                    // No window yet, or it is closing: the line stays in the sink's history.
                    let _ = app.emit(EVENT, Event::Log(line));
                }
                // A burst outran the window; the skipped lines are still in `log_recent`.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Tells the window that `task` ended, with the error's whole chain when it failed.
pub fn finished<T, E: std::error::Error + 'static>(
    reporter: &Reporter,
    task: &str,
    result: &Result<T, E>,
) {
    reporter.finished(
        task,
        result.as_ref().err().map(|e| crate::IpcError::chain(e)),
    );
}

/// A reporter that sends the core's progress and task events to the window.
pub fn reporter(app: &AppHandle) -> Reporter {
    let app = app.clone();
    Reporter::new(move |event| {
        // No window (closing): the work goes on; its result still reaches the caller.
        let _ = app.emit(EVENT, event);
    })
}

/// How often machines' states are compared with libvirt's.
const MACHINE_WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends `Event::Machines` whenever the machines' list or states change: through Sloop, another
/// Sloop (the CLI), virsh, or a guest powering itself off. libvirt is asked every two seconds.
pub fn watch_machines(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut last = None;
        loop {
            let state = app.state::<AppState>();
            if let (Ok(config), Ok(conn)) = (state.config(), state.connection().await) {
                match sloop_core::machine::list(&state.paths, config, &conn).await {
                    Ok(machines) if last.as_ref() != Some(&machines) => {
                        let _ = app.emit(
                            EVENT,
                            Event::Machines {
                                machines: machines.clone(),
                            },
                        );
                        last = Some(machines);
                    }
                    Ok(_) => {}
                    Err(sloop_core::machine::MachineError::Libvirt(_)) => {
                        state.forget_connection().await
                    }
                    Err(e) => tracing::debug!("machine watch: {e}"),
                }
            }
            tokio::time::sleep(MACHINE_WATCH_EVERY).await;
        }
    });
}
