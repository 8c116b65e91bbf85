//! Tutorials: the ones opened here, open one (a file or URL), reset one to its start. Opening and
//! resetting report progress as events under the task `tutorial:<name>` and end with a
//! `finished` event.

use sloop_core::TaskId;
use sloop_core::facade::OpenedTutorial;
use sloop_core::tutorial::{self, TutorialView};
use tauri::State;

use crate::ipc_error::IpcError;
use crate::state::AppState;

/// Every tutorial opened here.
#[tauri::command]
pub async fn tutorial_list(state: State<'_, AppState>) -> Result<Vec<TutorialView>, IpcError> {
    Ok(state.core.tutorials().await?)
}

/// Opens the tutorial file at `location` (a path or URL); resolves once its machine answers.
/// `replace`: the user agreed to take another version of a tutorial opened before.
#[tauri::command]
pub async fn tutorial_open(
    state: State<'_, AppState>,
    location: String,
    replace: bool,
) -> Result<OpenedTutorial, IpcError> {
    Ok(state.core.open_tutorial(&location, replace, true).await?)
}

/// Brings tutorial `name`'s machine back to its start; the work directory is moved aside.
#[tauri::command]
pub async fn tutorial_reset(
    state: State<'_, AppState>,
    name: String,
) -> Result<OpenedTutorial, IpcError> {
    Ok(state.core.reset_tutorial(&name).await?)
}

/// Cancels the opening or reset of tutorial `name`; false when none was running.
#[tauri::command]
pub fn tutorial_cancel(state: State<'_, AppState>, name: String) -> bool {
    state
        .core
        .tasks()
        .cancel(&TaskId::from(tutorial::task_name(&name).as_str()))
}
