//! Core events to window events. Everything the core tells the window without being asked goes
//! out as one `sloop_core::event::Event` on one Tauri event name, so the UI has one listener.

use sloop_core::event::Event;
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

/// The Tauri event name every core event is emitted on.
pub const EVENT: &str = "sloop://event";

/// Sends every new log line to the window as `Event::Log`, for as long as the app runs. Lines
/// the window missed in a burst are still in the sink's history (`log_recent`).
pub fn forward_log(app: &AppHandle) {
    forward(app, app.state::<AppState>().log.subscribe(), Event::Log);
}

/// Sends every event of the core's workflows (progress, task ends, proxy placements) to the
/// window, for as long as the app runs.
pub fn forward_core(app: &AppHandle) {
    forward(app, app.state::<AppState>().core.subscribe(), |event| event);
}

/// Emits each item of `items` to the window as `into` makes it an event. No window (not yet
/// open, or closing) loses nothing that matters: the work goes on and its result still reaches
/// its caller.
fn forward<T: Clone + Send + 'static>(
    app: &AppHandle,
    mut items: tokio::sync::broadcast::Receiver<T>,
    into: fn(T) -> Event,
) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            match items.recv().await {
                Ok(item) => {
                    let _ = app.emit(EVENT, into(item));
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
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
            match state.core.machines().await {
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
                Err(e) => tracing::debug!("machine watch: {e}"),
            }
            tokio::time::sleep(MACHINE_WATCH_EVERY).await;
        }
    });
}

/// How often the proxy's time left is looked at, for the expiry warning.
const PROXY_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Follows the proxy file: whenever it changes (renewed by Sloop or any grid tool, removed),
/// sends `Event::Proxy` and places the new proxy in every running attached machine
/// (`Event::ProxyPlaced`). Every 30 s it also checks the time left, and once per proxy shows a
/// desktop notification when less than the warning time is left.
pub fn watch_proxy(app: &AppHandle) {
    let path = sloop_core::proxy::default_path();
    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let watch = sloop_core::proxy::watch::watch(&path, move || {
        let _ = changed.send(());
    });
    let watch = match watch {
        Ok(watch) => Some(watch),
        Err(e) => {
            tracing::warn!("{e}; renewals reach machines at their next start");
            None
        }
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        // Without a watch there are no changes to wait for, only the clock.
        let watching = watch.is_some();
        // The watch lives as long as this task, which lives as long as the app.
        let _watch = watch;
        let mut warned_for: Option<String> = None;
        let mut ticker = tokio::time::interval(PROXY_CHECK_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let renewed = tokio::select! {
                _ = ticker.tick() => false,
                change = changes.recv(), if watching => change.is_some(),
            };
            if renewed {
                // Changes that queued up meanwhile are this one.
                while changes.try_recv().is_ok() {}
                let Some(status) = proxy_status(&app).await else {
                    continue;
                };
                let valid = status.info.as_ref().is_some_and(|i| i.seconds_left > 0);
                let _ = app.emit(
                    EVENT,
                    Event::Proxy {
                        status: Box::new(status),
                    },
                );
                if valid {
                    // Placements reach the window as core events.
                    app.state::<AppState>().core.place_proxy().await;
                }
            }
            // The expiry check reads only the proxy (no keyring: it could ask to be unlocked).
            let Some(info) = proxy_info(&app).await else {
                continue;
            };
            let warning = app
                .state::<AppState>()
                .config()
                .map(|c| i64::from(c.proxy_warning_minutes()) * 60)
                .unwrap_or(3600);
            if info.seconds_left < warning && warned_for.as_deref() != Some(info.not_after.as_str())
            {
                warned_for = Some(info.not_after.clone());
                notify_expiry(&app, &info);
                if let Some(status) = proxy_status(&app).await {
                    let _ = app.emit(
                        EVENT,
                        Event::Proxy {
                            status: Box::new(status),
                        },
                    );
                }
            }
        }
    });
}

async fn proxy_info(app: &AppHandle) -> Option<sloop_core::proxy::ProxyInfo> {
    let anchors = app.state::<AppState>().config().ok()?.ca_dir();
    tokio::task::spawn_blocking(move || {
        sloop_core::proxy::inspect(
            &sloop_core::proxy::default_path(),
            &anchors,
            time::OffsetDateTime::now_utc(),
        )
    })
    .await
    .ok()?
    .ok()?
}

async fn proxy_status(app: &AppHandle) -> Option<sloop_core::proxy::ProxyStatus> {
    let state = app.state::<AppState>();
    let config = state.config().ok()?.clone();
    let keyring = state.core.keyring().clone();
    tokio::task::spawn_blocking(move || sloop_core::proxy::status(&config, &keyring))
        .await
        .ok()
}

fn notify_expiry(app: &AppHandle, info: &sloop_core::proxy::ProxyInfo) {
    use tauri_plugin_notification::NotificationExt as _;
    let body = if info.seconds_left > 0 {
        format!(
            "Your grid proxy ends in {} minutes. Renew it in Sloop or with your grid tools.",
            info.seconds_left / 60
        )
    } else {
        "Your grid proxy has expired. Renew it in Sloop or with your grid tools.".to_string()
    };
    // No notification service (a bare X server): the header still shows the warning.
    if let Err(e) = app
        .notification()
        .builder()
        .title("Grid proxy")
        .body(body)
        .show()
    {
        tracing::info!("no desktop notification: {e}");
    }
}
