//! How long work says what it is doing: [`Progress`] reports sent to a [`Reporter`], at a
//! steady pace by a [`Meter`]. A leaf: every module with long work reports through it, and the
//! front ends receive the reports inside the core's `Event`.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use ts_rs::TS;

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
    /// Units per second lately, when the work has run long enough to say.
    #[ts(type = "number | null")]
    pub rate: Option<u64>,
    /// Seconds left at that rate, when `total` and `rate` are known.
    #[ts(type = "number | null")]
    pub eta_seconds: Option<u64>,
}

/// What `done` and `total` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum ProgressUnit {
    Bytes,
    Steps,
}

/// Where long work sends its progress. Cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    send: Arc<dyn Fn(Progress) + Send + Sync>,
}

impl Reporter {
    /// Sends every report to `send`.
    pub fn new(send: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        Self {
            send: Arc::new(send),
        }
    }

    /// Drops every report.
    pub fn silent() -> Self {
        Self::new(|_| {})
    }

    /// Reports progress.
    pub fn progress(&self, progress: Progress) {
        (self.send)(progress);
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter")
    }
}

/// Turns a running count into [`Progress`] events: at most ten a second, with the rate over the
/// last few seconds and the time left at that rate. Shared by every long transfer.
#[derive(Debug)]
pub struct Meter {
    task: String,
    stage: String,
    total: Option<u64>,
    unit: ProgressUnit,
    last_emit: Option<std::time::Instant>,
    /// (when, done) samples of the last few seconds, oldest first.
    samples: std::collections::VecDeque<(std::time::Instant, u64)>,
}

impl Meter {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(100);
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(3);

    pub fn new(task: &str, stage: &str, total: Option<u64>, unit: ProgressUnit) -> Self {
        Self {
            task: task.to_string(),
            stage: stage.to_string(),
            total,
            unit,
            last_emit: None,
            samples: std::collections::VecDeque::new(),
        }
    }

    /// Starts a new stage; the rate starts again from nothing.
    pub fn stage(&mut self, stage: &str) {
        self.stage = stage.to_string();
        self.samples.clear();
        self.last_emit = None;
    }

    /// Records `done`; reports when a tenth of a second has passed since the last report, or
    /// always when `force` (the first and last counts of a stage).
    pub fn update(&mut self, reporter: &Reporter, done: u64, force: bool) {
        let now = std::time::Instant::now();
        if let Some(&(_, last)) = self.samples.back()
            && done < last
        {
            self.samples.clear();
        }
        self.samples.push_back((now, done));
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| now.duration_since(t) > Self::WINDOW)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
        if !force
            && self
                .last_emit
                .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            return;
        }
        self.last_emit = Some(now);
        let rate = match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, d0)), Some(&(t1, d1))) if t1.duration_since(t0).as_millis() >= 200 => {
                let seconds = t1.duration_since(t0).as_secs_f64();
                Some(((d1 - d0) as f64 / seconds) as u64)
            }
            _ => None,
        };
        let eta_seconds = match (self.total, rate) {
            (Some(total), Some(rate)) if rate > 0 => Some(total.saturating_sub(done) / rate),
            _ => None,
        };
        reporter.progress(Progress {
            task: self.task.clone(),
            stage: self.stage.clone(),
            done,
            total: self.total,
            unit: self.unit,
            rate,
            eta_seconds,
        });
    }
}
