//! Core events to window events. Everything the core tells the window without being asked goes
//! out as one `sloop_core::event::Event` on one Tauri event name, so the UI has one listener.

use sloop_core::event::Event;
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::broadcast::error::RecvError;

use crate::opens::OpenQueue;
use crate::state::AppState;

/// The Tauri event name every core event is emitted on.
pub const EVENT: &str = "sloop://event";

/// Sends every new log line to the window as `Event::Log`, for as long as the app runs. Lines
/// the window missed in a burst are still in the sink's history (`log_recent`).
pub fn forward_log(app: &AppHandle) {
    forward(app, app.state::<AppState>().log.subscribe(), |_, line| {
        Event::Log(line)
    });
}

/// Sends every event of the core's workflows and watches (progress, task ends, machines, the
/// proxy) to the window, for as long as the app runs. The proxy's expiry also becomes a desktop
/// notification.
pub fn forward_core(app: &AppHandle) {
    forward(
        app,
        app.state::<AppState>().core.subscribe(),
        |app, event| {
            if let Event::ProxyExpiring { seconds_left, .. } = &event {
                notify_expiry(app, *seconds_left);
            }
            event
        },
    );
}

/// Emits each item of `items` to the window as `into` makes it an event (after any side effect
/// `into` has on the desktop). No window (not yet
/// open, or closing) loses nothing that matters: the work goes on and its result still reaches
/// its caller.
fn forward<T: Clone + Send + 'static>(
    app: &AppHandle,
    mut items: tokio::sync::broadcast::Receiver<T>,
    into: impl Fn(&AppHandle, T) -> Event + Send + 'static,
) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            match items.recv().await {
                Ok(item) => {
                    let _ = app.emit(EVENT, into(&app, item));
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Runs the core's machine watch (`Event::Machines`) for as long as the app runs.
pub fn watch_machines(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        app.state::<AppState>().core.watch_machines().await;
    });
}

/// Runs the core's proxy watch (renewals placed in attached machines, `Event::Proxy`,
/// `Event::ProxyExpiring`) for as long as the app runs. Without a file watch, renewals reach
/// machines at their next start, and the expiry warning still comes.
pub fn watch_proxy(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let core = &app.state::<AppState>().core;
        let Err(e) = core.watch_proxy().await;
        tracing::warn!("{e}; renewals reach machines at their next start");
        core.watch_proxy_expiry().await;
    });
}

/// The desktop notification for `Event::ProxyExpiring`.
fn notify_expiry(app: &AppHandle, seconds_left: i64) {
    let body = if seconds_left > 0 {
        format!(
            "Your grid proxy ends in {} minutes. Renew it in Sloop or with your grid tools.",
            seconds_left / 60
        )
    } else {
        "Your grid proxy has expired. Renew it in Sloop or with your grid tools.".to_string()
    };
    notify(app, "Grid proxy", &body);
}

/// Shows a desktop notification. Without a notification service (a bare X server) nothing is
/// shown: the window says the same thing where it matters.
pub fn notify(app: &AppHandle, title: &str, body: &str) {
    use tauri_plugin_notification::NotificationExt as _;
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::info!("no desktop notification: {e}");
    }
}

/// Tells the window that the desktop asked the app to open files or links: the window takes them
/// with `open_requests_take`.
pub const OPEN_REQUESTED: &str = "sloop://open-requested";

/// Asks the window what to do with the running machines (their names are the payload) before
/// the app quits: stop them, keep them running, or stay open.
pub const CLOSE_REQUESTED: &str = "sloop://close-requested";

/// A second launch of the app (a double-click on a bundle or tutorial file, a `sloop://` link
/// while Sloop is open): its arguments are queued for the window, which is brought to the front;
/// the second process ends.
pub fn second_launch(app: &AppHandle, args: Vec<String>, cwd: String) {
    let queued = app.state::<OpenQueue>().push_args(
        args.get(1..).unwrap_or_default(),
        std::path::Path::new(&cwd),
    );
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
    tracing::info!(
        queued,
        "a second launch handed its files and links to this window"
    );
    if queued > 0 {
        let _ = app.emit(OPEN_REQUESTED, ());
    }
}

/// Closing the window while machines run asks the window what to do with them (as Multipass
/// does); with none running, or when Sloop cannot tell, the app quits. Machines left running
/// keep running under libvirt.
pub fn window_event(window: &tauri::Window, event: &tauri::WindowEvent) {
    let tauri::WindowEvent::CloseRequested { api, .. } = event else {
        return;
    };
    api.prevent_close();
    let app = window.app_handle().clone();
    tauri::async_runtime::spawn(async move {
        match crate::commands::app::running_machines(&app.state::<AppState>()).await {
            Ok(names) if !names.is_empty() => {
                let _ = app.emit(CLOSE_REQUESTED, names);
            }
            Ok(_) => app.exit(0),
            Err(e) => {
                tracing::warn!("cannot tell which machines run ({}); quitting", e.message);
                app.exit(0);
            }
        }
    });
}
