//! Images: the catalogs' images and the local store. Pulls report progress as events under the
//! task `pull:<identifier>` and end with a `finished` event.

use sloop_core::image::ImageView;
use tauri::State;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// Every catalog image with its local state, then stored images no catalog lists.
#[tauri::command]
pub async fn image_list(state: State<'_, AppState>) -> Result<Vec<ImageView>, IpcError> {
    Ok(state.core.images().await?)
}

/// Downloads and verifies the image `query` names; resolves when it is in the store.
#[tauri::command]
pub async fn image_pull(state: State<'_, AppState>, query: String) -> Result<ImageView, IpcError> {
    Ok(state.core.pull(&query).await?)
}

/// Cancels the pull of `query`; the bytes downloaded so far are kept for the next pull.
#[tauri::command]
pub async fn image_cancel(state: State<'_, AppState>, query: String) -> Result<bool, IpcError> {
    let task = state.core.pull_task(&query).await?;
    Ok(state.core.tasks().cancel(&task))
}

/// Removes an image's file from the store (refused while a machine uses it).
#[tauri::command]
pub async fn image_remove(
    state: State<'_, AppState>,
    query: String,
) -> Result<ImageView, IpcError> {
    Ok(state.core.remove_image(&query).await?)
}
