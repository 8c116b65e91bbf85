//! Sloop's desktop app: a thin shell over `sloop-core`.
//!
//! This file only wires things together: state, logging, the command list and the event
//! forwarder. Commands live in `commands/<area>.rs`, each a few lines (get state, call the core,
//! map the result); behaviour lives in the core. See docs/ARCHITECTURE.md.

mod commands;
mod events;
mod ipc_error;
mod opens;
mod state;

pub use ipc_error::{ErrorCode, IpcError};

use anyhow::Context as _;
use sloop_core::logging::{self, LogOptions, LogSink};
use sloop_core::paths::Paths;

use crate::opens::OpenQueue;
use crate::state::AppState;

/// How many log lines the app keeps for its log view.
const LOG_LINES_KEPT: usize = 2000;

/// Starts the app and returns when its window is closed.
pub fn run() -> anyhow::Result<()> {
    let paths = Paths::from_env().context("cannot work out where Sloop keeps its files")?;
    let sink = LogSink::new(LOG_LINES_KEPT);
    let log_guard = logging::init(
        &paths,
        LogOptions {
            stderr_filter: Some("warn".into()),
            sink: Some(sink.clone()),
        },
    )
    .context("cannot start logging")?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %paths.data_dir.display(),
        "Sloop started"
    );
    let state = AppState::new(paths, sink);
    // What this launch was asked to open (a double-clicked file, a sloop:// link).
    let opens = OpenQueue::default();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .filter_map(|arg| arg.into_string().ok())
        .collect();
    let cwd = std::env::current_dir().unwrap_or_default();
    opens.push_args(&args, &cwd);

    let mut builder = tauri::Builder::default();
    // One app per user: a second launch hands its files and links to this window and ends (this
    // plugin comes first), and the window opens where and as large as it was last closed. An app
    // with a SLOOP_HOME of its own (tests, benchmarks, classroom scripts) is apart from the
    // user's: a separate instance, in the window's default place.
    if std::env::var_os(sloop_core::paths::HOME_ENV).is_none() {
        builder = builder
            .plugin(tauri_plugin_single_instance::init(events::second_launch))
            .plugin(tauri_plugin_window_state::Builder::default().build());
    }
    let app = builder
        .manage(state)
        .manage(opens)
        // The native folder picker for a machine's work directory.
        .plugin(tauri_plugin_dialog::init())
        // The proxy's expiry warning and grid runs that ended.
        .plugin(tauri_plugin_notification::init())
        .setup(|app| {
            events::forward_log(app.handle());
            events::forward_core(app.handle());
            events::watch_machines(app.handle());
            events::watch_proxy(app.handle());
            Ok(())
        })
        .on_window_event(events::window_event)
        .invoke_handler(tauri::generate_handler![
            commands::app::app_about,
            commands::app::app_painted,
            commands::app::app_quit,
            commands::app::open_requests_take,
            commands::host::host_check,
            commands::catalog::catalog_list,
            commands::catalog::catalog_add,
            commands::catalog::catalog_add_demo,
            commands::catalog::catalog_refresh,
            commands::catalog::catalog_remove,
            commands::images::image_list,
            commands::images::image_pull,
            commands::images::image_cancel,
            commands::images::image_remove,
            commands::machines::machine_list,
            commands::machines::machine_create,
            commands::machines::machine_start,
            commands::machines::machine_stop,
            commands::machines::machine_force_off,
            commands::machines::machine_restart,
            commands::machines::machine_delete,
            commands::machines::machine_console,
            commands::grid::site_list,
            commands::grid::site_add,
            commands::grid::site_remove,
            commands::grid::site_info,
            commands::grid::run_submit,
            commands::grid::run_submit_cancel,
            commands::grid::run_list,
            commands::grid::run_info,
            commands::grid::run_logs,
            commands::grid::run_cancel,
            commands::grid::run_clean,
            commands::grid::run_resume,
            commands::grid::run_fetch,
            commands::grid::run_fetch_cancel,
            commands::desktop::desktop_notify,
            commands::bundles::machine_export_default,
            commands::bundles::machine_export,
            commands::bundles::machine_export_cancel,
            commands::bundles::bundle_inspect,
            commands::bundles::machine_import,
            commands::bundles::machine_import_cancel,
            commands::bundles::machine_provenance,
            commands::terminal::terminal_open,
            commands::terminal::terminal_write,
            commands::terminal::terminal_resize,
            commands::terminal::terminal_close,
            commands::tutorials::tutorial_list,
            commands::tutorials::tutorial_open,
            commands::tutorials::tutorial_reset,
            commands::tutorials::tutorial_cancel,
            commands::logs::log_recent,
            commands::proxy::proxy_status,
            commands::proxy::proxy_init,
            commands::proxy::proxy_forget,
            commands::proxy::machine_proxy_attach,
            commands::proxy::machine_proxy_detach,
        ])
        .build(tauri::generate_context!())
        .context("cannot start the app window")?;

    // The event loop may end the process without unwinding: flush the log file on the way out.
    let mut log_guard = Some(log_guard);
    app.run(move |_, event| {
        if let tauri::RunEvent::Exit = event {
            tracing::info!("Sloop stopped");
            drop(log_guard.take());
        }
    });
    Ok(())
}
