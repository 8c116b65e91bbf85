//! The one event type that long work reports through; the CLI draws progress bars from it and the
//! app forwards it to the window as-is.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use ts_rs::TS;

use crate::logging::LogLine;

/// What a piece of long work is doing now.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Progress {
    /// Names the piece of work, e.g. `pull:<image id>` or `start:<machine>`.
    pub task: String,
    /// What it is doing, in a few words ("downloading", "booting").
    pub stage: String,
    /// Units done so far.
    #[ts(type = "number")]
    pub done: u64,
    /// Units in all, when known.
    #[ts(type = "number | null")]
    pub total: Option<u64>,
    pub unit: ProgressUnit,
}

/// What `done` and `total` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum ProgressUnit {
    Bytes,
    Steps,
}

/// Everything the core tells front ends without being asked.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all = "camelCase")]
#[ts(export)]
pub enum Event {
    Progress(Progress),
    Log(LogLine),
    /// A task ended; `error` is its one-line reason when it failed.
    Finished {
        task: String,
        error: Option<String>,
    },
}

/// Where core functions send their events. Cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    send: Arc<dyn Fn(Event) + Send + Sync>,
}

impl Reporter {
    /// Sends every event to `send`.
    pub fn new(send: impl Fn(Event) + Send + Sync + 'static) -> Self {
        Self {
            send: Arc::new(send),
        }
    }

    /// Drops every event.
    pub fn silent() -> Self {
        Self::new(|_| {})
    }

    pub fn emit(&self, event: Event) {
        (self.send)(event);
    }

    /// Reports progress on `task`.
    pub fn progress(
        &self,
        task: &str,
        stage: &str,
        done: u64,
        total: Option<u64>,
        unit: ProgressUnit,
    ) {
        self.emit(Event::Progress(Progress {
            task: task.to_string(),
            stage: stage.to_string(),
            done,
            total,
            unit,
        }));
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter")
    }
}
