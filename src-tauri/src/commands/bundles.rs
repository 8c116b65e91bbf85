//! Bundles: export a machine, inspect a bundle, import one, a machine's provenance. Exports and
//! imports report progress as events under `export:<name>` / `import:<name>` and end with a
//! `finished` event.

use std::path::PathBuf;

use serde::Deserialize;
use sloop_core::TaskId;
use sloop_core::bundle::export::{self, ExportRequest, Exported};
use sloop_core::bundle::import::{ImportRequest, Imported};
use sloop_core::bundle::{BundleReport, MachineProvenance};
use tauri::State;
use ts_rs::TS;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// What the export dialog sends.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ExportMachine {
    pub name: String,
    /// The bundle file to write; it must not exist.
    pub output: String,
    pub note: String,
    /// Sign with the user's grid identity (the default); false makes an unsigned bundle.
    pub signed: bool,
    /// Stop the machine first when it runs.
    pub stop: bool,
}

/// What the import dialog sends.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ImportBundle {
    pub file: String,
    /// The new machine's name; the bundle's own when empty.
    pub name: Option<String>,
    pub work_dir: Option<String>,
    /// The user agreed to an unsigned bundle.
    pub allow_unsigned: bool,
    /// The user agreed to the bundle's signer.
    pub trust_signer: bool,
}

impl From<ImportBundle> for ImportRequest {
    fn from(form: ImportBundle) -> Self {
        Self {
            file: PathBuf::from(form.file),
            name: form.name.filter(|n| !n.is_empty()),
            work_dir: form.work_dir.filter(|d| !d.is_empty()).map(PathBuf::from),
            allow_unsigned: form.allow_unsigned,
            trust_signer: form.trust_signer,
        }
    }
}

/// Where an export of `name` goes unless the user picks another file.
#[tauri::command]
pub fn machine_export_default(name: String) -> String {
    export::default_output(&name).display().to_string()
}

/// Writes the machine's changes into a bundle, signed unless asked otherwise.
#[tauri::command]
pub async fn machine_export(
    state: State<'_, AppState>,
    request: ExportMachine,
) -> Result<Exported, IpcError> {
    let export = ExportRequest {
        machine: request.name,
        output: PathBuf::from(request.output),
        note: request.note,
    };
    Ok(state
        .core
        .export(&export, request.signed, request.stop)
        .await?)
}

/// Cancels the export of machine `name`; nothing is kept.
#[tauri::command]
pub fn machine_export_cancel(state: State<'_, AppState>, name: String) -> bool {
    state.core.tasks().cancel(&TaskId::new("export", &name))
}

/// What a bundle is and whether each of its checks holds.
#[tauri::command]
pub async fn bundle_inspect(
    state: State<'_, AppState>,
    file: String,
) -> Result<BundleReport, IpcError> {
    Ok(state.core.inspect_bundle(&PathBuf::from(file)).await?)
}

/// Makes a new machine from a bundle. Rejects with `bundleConsent` when the user must agree
/// first (unsigned, or a signer not seen before).
#[tauri::command]
pub async fn machine_import(
    state: State<'_, AppState>,
    request: ImportBundle,
) -> Result<Imported, IpcError> {
    Ok(state.core.import(&request.into()).await?)
}

/// Cancels an import; nothing is kept.
#[tauri::command]
pub fn machine_import_cancel(
    state: State<'_, AppState>,
    request: ImportBundle,
) -> Result<bool, IpcError> {
    let task = state.core.import_task(&request.into())?;
    Ok(state.core.tasks().cancel(&task))
}

/// Where machine `name` comes from.
#[tauri::command]
pub async fn machine_provenance(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineProvenance, IpcError> {
    Ok(state.core.provenance(&name).await?)
}
