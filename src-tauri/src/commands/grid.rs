//! The grid: sites (ARC CEs) and runs of machines at them. A submit reports progress as events
//! under `submit:<machine>` (its bundle first, under `export:<machine>`), a fetch under
//! `fetch:<run>`; both end with a `finished` event. Only names, addresses, paths and states cross
//! to the window: the proxy is read and delegated by the core, never sent here.

use std::path::PathBuf;

use serde::Deserialize;
use sloop_core::TaskId;
use sloop_core::facade::RunLogs;
use sloop_core::run::RunView;
use sloop_core::run::fetch::Fetched;
use sloop_core::run::submit::SubmitRequest;
use sloop_core::site::{Site, SiteInfo};
use tauri::State;
use ts_rs::TS;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// The sites the user added, in the order added.
#[tauri::command]
pub async fn site_list(state: State<'_, AppState>) -> Result<Vec<Site>, IpcError> {
    Ok(state.core.sites().await?)
}

/// Adds a site: an ARC CE's REST endpoint, e.g. `https://ce.example.org/arex`.
#[tauri::command]
pub async fn site_add(
    state: State<'_, AppState>,
    name: String,
    url: String,
) -> Result<Site, IpcError> {
    Ok(state.core.add_site(&name, &url).await?)
}

/// Removes a site from the list; its runs stay until cleaned.
#[tauri::command]
pub async fn site_remove(state: State<'_, AppState>, name: String) -> Result<Site, IpcError> {
    Ok(state.core.remove_site(&name).await?)
}

/// Asks the site, with the user's proxy, how it is: health, queues, whether it runs VM jobs.
#[tauri::command]
pub async fn site_info(state: State<'_, AppState>, name: String) -> Result<SiteInfo, IpcError> {
    Ok(state.core.site_info(&name).await?)
}

/// What the Run on grid dialog sends.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct SubmitRun {
    /// The machine to send; it must be stopped.
    pub machine: String,
    pub site: String,
    /// What to run in /analysis; none (or only blanks) for an interactive run that stays up
    /// for a debug shell.
    pub command: Option<String>,
    /// Files or folders copied to /analysis.
    pub inputs: Vec<String>,
    /// An hour when none.
    pub walltime_secs: Option<u32>,
    /// The machine's own when none.
    pub cpus: Option<u32>,
    /// The machine's own when none.
    pub memory_mib: Option<u32>,
    /// Bring the run's disk changes back too, for a fetch that makes a machine of them.
    pub keep_changes: bool,
    /// An interactive run's SSH relay, `USER@HOST[:PORT]`; none (or blanks) for the site's own.
    pub relay: Option<String>,
}

impl From<SubmitRun> for SubmitRequest {
    fn from(form: SubmitRun) -> Self {
        Self {
            machine: form.machine,
            site: form.site,
            // The form sends an empty field for "interactive".
            command: form.command.filter(|c| !c.trim().is_empty()),
            inputs: form.inputs.into_iter().map(PathBuf::from).collect(),
            walltime_secs: form.walltime_secs.map(u64::from),
            cpus: form.cpus,
            memory_mib: form.memory_mib,
            keep_changes: form.keep_changes,
            as_run: None,
            relay: form.relay.filter(|r| !r.trim().is_empty()),
        }
    }
}

/// Sends a stopped machine to a site: only its changes travel. Resolves with the new run once
/// every file is uploaded.
#[tauri::command]
pub async fn run_submit(
    state: State<'_, AppState>,
    request: SubmitRun,
) -> Result<RunView, IpcError> {
    Ok(state.core.submit(&request.into()).await?)
}

/// Stops the submit of machine `name`; what reached the site is taken back.
#[tauri::command]
pub fn run_submit_cancel(state: State<'_, AppState>, machine: String) -> bool {
    let task = state.core.submit_task(&machine);
    state.core.tasks().cancel(&task)
}

/// Every run, newest first; when `live`, unfinished ones are first asked of their sites.
#[tauri::command]
pub async fn run_list(state: State<'_, AppState>, live: bool) -> Result<Vec<RunView>, IpcError> {
    Ok(state.core.runs(live).await?)
}

/// One run, asked of its site when it has not ended.
#[tauri::command]
pub async fn run_info(state: State<'_, AppState>, id: String) -> Result<RunView, IpcError> {
    Ok(state.core.run_info(&id).await?)
}

/// The run's logs so far: the VM job's, the machine's console, the command's output.
#[tauri::command]
pub async fn run_logs(state: State<'_, AppState>, id: String) -> Result<RunLogs, IpcError> {
    Ok(state.core.run_logs(&id).await?)
}

/// Asks the site to stop the run.
#[tauri::command]
pub async fn run_cancel(state: State<'_, AppState>, id: String) -> Result<RunView, IpcError> {
    Ok(state.core.cancel_run(&id).await?)
}

/// Submits again a run whose submit did not end; what of it reached the site is taken back first.
#[tauri::command]
pub async fn run_resume(state: State<'_, AppState>, id: String) -> Result<RunView, IpcError> {
    Ok(state.core.resume_run(&id).await?)
}

/// Removes the run at its site and here; fetched outputs stay. The window asks the user first.
#[tauri::command]
pub async fn run_clean(state: State<'_, AppState>, id: String) -> Result<(), IpcError> {
    Ok(state.core.clean_run(&id).await?)
}

/// Brings an ended run's outputs into `to` (made; it must not exist), or where the core puts
/// them by default; with `keep_changes`, also its disk changes, as a new machine.
#[tauri::command]
pub async fn run_fetch(
    state: State<'_, AppState>,
    id: String,
    to: Option<String>,
    keep_changes: bool,
) -> Result<Fetched, IpcError> {
    let to = to.filter(|t| !t.is_empty()).map(PathBuf::from);
    Ok(state
        .core
        .fetch_run(&id, to.as_deref(), keep_changes)
        .await?)
}

/// Stops the fetch of run `id`.
#[tauri::command]
pub fn run_fetch_cancel(state: State<'_, AppState>, id: String) -> bool {
    state.core.tasks().cancel(&TaskId::new("fetch", &id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> SubmitRun {
        SubmitRun {
            machine: "analysis".into(),
            site: "test-ce".into(),
            command: None,
            inputs: vec!["/home/jane/data.root".into(), "/home/jane/macros".into()],
            walltime_secs: Some(5400),
            cpus: Some(2),
            memory_mib: Some(2048),
            keep_changes: true,
            relay: None,
        }
    }

    #[test]
    fn submit_form_becomes_the_core_request() {
        let request = SubmitRequest::from(SubmitRun {
            command: Some("./run.sh --events 100".into()),
            ..form()
        });
        assert_eq!(request.machine, "analysis");
        assert_eq!(request.site, "test-ce");
        assert_eq!(request.command.as_deref(), Some("./run.sh --events 100"));
        assert_eq!(
            request.inputs,
            [
                PathBuf::from("/home/jane/data.root"),
                PathBuf::from("/home/jane/macros")
            ]
        );
        assert_eq!(request.walltime_secs, Some(5400));
        assert_eq!((request.cpus, request.memory_mib), (Some(2), Some(2048)));
        assert!(request.keep_changes);
    }

    #[test]
    fn blank_command_is_an_interactive_run() {
        for command in [None, Some(String::new()), Some("  \n".into())] {
            let request = SubmitRequest::from(SubmitRun { command, ..form() });
            assert_eq!(request.command, None);
        }
        // A blank relay is the site's own (or none).
        for relay in [None, Some(" ".into())] {
            assert_eq!(
                SubmitRequest::from(SubmitRun { relay, ..form() }).relay,
                None
            );
        }
        let relay = Some("ada@login.example.org".to_string());
        assert_eq!(
            SubmitRequest::from(SubmitRun {
                relay: relay.clone(),
                ..form()
            })
            .relay,
            relay
        );
    }

    #[test]
    fn submit_form_reads_the_dialogs_json() {
        let form: SubmitRun = serde_json::from_value(serde_json::json!({
            "machine": "analysis",
            "site": "test-ce",
            "command": null,
            "inputs": [],
            "walltimeSecs": 3600,
            "cpus": null,
            "memoryMib": null,
            "keepChanges": false,
            "relay": null
        }))
        .unwrap();
        let request = SubmitRequest::from(form);
        assert_eq!(request.walltime_secs, Some(3600));
        assert_eq!((request.cpus, request.memory_mib), (None, None));
        assert!(request.inputs.is_empty() && !request.keep_changes);
    }
}
