//! Catalogs: the subscribed image lists.

use sloop_core::catalog::{self, AddRequest, CatalogView};
use tauri::State;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// Every catalog, each verified (or its cached verdict taken).
#[tauri::command]
pub async fn catalog_list(state: State<'_, AppState>) -> Result<Vec<CatalogView>, IpcError> {
    Ok(state.core.catalogs().await?)
}

/// Subscribes to the list at `source` (URL, file or mirror folder); `name` is optional.
#[tauri::command]
pub async fn catalog_add(
    state: State<'_, AppState>,
    source: String,
    name: Option<String>,
) -> Result<CatalogView, IpcError> {
    let config = state.config()?;
    let request = AddRequest {
        source,
        name: name.filter(|n| !n.is_empty()),
        ..AddRequest::default()
    };
    Ok(catalog::add(state.paths(), config, &request, state.now()).await?)
}

/// Subscribes to the offline demo catalog, building it from the demo image first.
#[tauri::command]
pub async fn catalog_add_demo(state: State<'_, AppState>) -> Result<CatalogView, IpcError> {
    let config = state.config()?;
    let image = catalog::demo::default_image()?;
    let live = catalog::demo::default_live();
    Ok(catalog::demo::ensure(state.paths(), config, &image, live.as_deref(), state.now()).await?)
}

/// Fetches a catalog's list again.
#[tauri::command]
pub async fn catalog_refresh(
    state: State<'_, AppState>,
    name: String,
) -> Result<CatalogView, IpcError> {
    let config = state.config()?;
    Ok(catalog::refresh(state.paths(), config, &name, state.now()).await?)
}

/// Forgets a catalog; downloaded images stay.
#[tauri::command]
pub async fn catalog_remove(state: State<'_, AppState>, name: String) -> Result<(), IpcError> {
    Ok(catalog::remove(state.paths(), &name)?)
}
