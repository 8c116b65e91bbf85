//! Progress on standard error while a workflow runs: one bar per task (a pull, a create, a
//! start; later an upload beside a submission), drawn by `indicatif` from the core's progress
//! events, which already carry the rate and the time left.

use std::collections::HashMap;
use std::io::IsTerminal as _;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sloop_core::event::Event;
use sloop_core::progress::{Progress, ProgressUnit};

use crate::output::bytes;

/// Draws the core's progress events while a workflow runs, and cancels the task named by
/// `on_interrupt` at Ctrl-C. Silent when standard error is not a terminal or output is JSON.
/// [`Follow::end`] stops drawing and clears the bars before the command prints its result.
pub struct Follow {
    drawing: tokio::task::JoinHandle<()>,
    interrupt: Option<tokio::task::JoinHandle<()>>,
    bars: MultiProgress,
}

impl Follow {
    pub fn start(ctx: &crate::Context, on_interrupt: Option<sloop_core::TaskId>) -> Self {
        use tokio::sync::broadcast::error::RecvError;
        let mut events = ctx.core.subscribe();
        let target = if !ctx.json && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bars = MultiProgress::with_draw_target(target);
        let drawing = {
            let bars = bars.clone();
            tokio::spawn(async move {
                let mut by_task: HashMap<String, ProgressBar> = HashMap::new();
                loop {
                    match events.recv().await {
                        Ok(Event::Progress(p)) => {
                            let bar = by_task
                                .entry(p.task.clone())
                                .or_insert_with(|| bars.add(ProgressBar::no_length()));
                            draw(bar, &p);
                        }
                        Ok(Event::Finished { task, .. }) => {
                            if let Some(bar) = by_task.remove(&task) {
                                bar.finish_and_clear();
                            }
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    }
                }
            })
        };
        let interrupt = on_interrupt.map(|task| {
            let tasks = ctx.core.tasks().clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    tasks.cancel(&task);
                }
            })
        });
        Self {
            drawing,
            interrupt,
            bars,
        }
    }

    /// Stops drawing (waiting for a draw under way) and clears the bars.
    pub async fn end(self) {
        self.drawing.abort();
        let _ = self.drawing.await;
        if let Some(interrupt) = self.interrupt {
            interrupt.abort();
        }
        let _ = self.bars.clear();
    }
}

/// One task's bar: a gauge when the total is known, else a spinner; the core's own words after.
fn draw(bar: &ProgressBar, progress: &Progress) {
    bar.set_message(line(progress));
    match progress.total {
        Some(total) => {
            if bar.length() != Some(total) {
                bar.set_style(gauge());
                bar.set_length(total);
            }
            bar.set_position(progress.done);
        }
        None => {
            if bar.length().is_some() {
                bar.set_style(ProgressStyle::default_spinner());
                bar.unset_length();
            }
            bar.tick();
        }
    }
}

fn gauge() -> ProgressStyle {
    ProgressStyle::with_template("[{bar:24}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// `downloading  12.0 MB of 22.1 MB  54%  8.1 MB/s  2 s left`
pub fn line(progress: &Progress) -> String {
    let amount = |n: u64| match progress.unit {
        ProgressUnit::Bytes => bytes(n),
        ProgressUnit::Steps => n.to_string(),
    };
    let mut out = format!("{:<12} {}", progress.stage, amount(progress.done));
    if let Some(total) = progress.total {
        out.push_str(&format!(" of {}", amount(total)));
        if let Some(percent) = progress.done.saturating_mul(100).checked_div(total) {
            out.push_str(&format!("  {percent:>3}%"));
        }
    }
    if let Some(rate) = progress.rate {
        out.push_str(&format!("  {}/s", amount(rate)));
    }
    if let Some(eta) = progress.eta_seconds {
        out.push_str(&format!(
            "  {} left",
            sloop_core::host::human_duration(i64::try_from(eta).unwrap_or(i64::MAX))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_amount_rate_and_time_left() {
        let progress = Progress {
            task: "pull:x".into(),
            stage: "downloading".into(),
            done: 12_000_000,
            total: Some(24_000_000),
            unit: ProgressUnit::Bytes,
            rate: Some(6_000_000),
            eta_seconds: Some(2),
        };
        let text = line(&progress);
        assert!(
            text.starts_with("downloading  12.0 MB of 24.0 MB   50%  6.0 MB/s"),
            "{text}"
        );
        assert!(text.ends_with("left"), "{text}");
    }
}
