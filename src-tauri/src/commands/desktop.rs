//! The desktop around the window: notifications the window decides to show (a grid run that
//! ended), through the same path as the proxy's expiry warning.

use tauri::AppHandle;

use crate::events;

/// Shows a desktop notification; nothing when the desktop has no notification service.
#[tauri::command]
pub async fn desktop_notify(app: AppHandle, title: String, body: String) {
    events::notify(&app, &title, &body);
}
