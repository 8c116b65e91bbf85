//! Images: the catalogs' images and the local store. Pulls report progress as events under the
//! task `pull:<identifier>` and end with a `finished` event.

use sloop_core::image::{self, ImageView};
use tauri::{AppHandle, State};

use crate::events;
use crate::ipc_error::IpcError;
use crate::state::AppState;

/// Every catalog image with its local state, then stored images no catalog lists.
#[tauri::command]
pub async fn image_list(state: State<'_, AppState>) -> Result<Vec<ImageView>, IpcError> {
    let config = state.config()?;
    Ok(image::list(&state.paths, config, state.now())?)
}

/// Downloads and verifies the image `query` names; resolves when it is in the store.
#[tauri::command]
pub async fn image_pull(
    app: AppHandle,
    state: State<'_, AppState>,
    query: String,
) -> Result<ImageView, IpcError> {
    let config = state.config()?;
    let task = pull_task(&state, &query)?;
    let (task, cancel) = state.start_task(&task).await?;
    let reporter = events::reporter(&app);
    let result = image::pull(
        &state.paths,
        config,
        &query,
        &reporter,
        &cancel,
        state.now(),
    )
    .await;
    state.end_task(&task).await;
    events::finished(&reporter, &task, &result);
    Ok(result?)
}

/// Cancels the pull of `query`; the bytes downloaded so far are kept for the next pull.
#[tauri::command]
pub async fn image_cancel(state: State<'_, AppState>, query: String) -> Result<bool, IpcError> {
    let task = pull_task(&state, &query)?;
    Ok(state.cancel_task(&task).await)
}

/// The task a pull of `query` runs as: named after the image, not the query, so that two
/// queries for one image are one task.
fn pull_task(state: &AppState, query: &str) -> Result<String, IpcError> {
    let images = image::list(&state.paths, state.config()?, state.now())?;
    Ok(image::task_name(image::find(&images, query)?))
}

/// Removes an image's file from the store (refused while a machine uses it).
#[tauri::command]
pub async fn image_remove(
    state: State<'_, AppState>,
    query: String,
) -> Result<ImageView, IpcError> {
    let config = state.config()?;
    Ok(image::remove(&state.paths, config, &query, state.now())?)
}
