//! A one-line progress display on standard error, redrawn in place when it is a terminal.

#![allow(clippy::print_stderr)]

use std::io::IsTerminal as _;

use sloop_core::progress::{Progress, ProgressUnit};

use crate::output::bytes;

/// Draws progress events; silent when standard error is not a terminal or output is JSON.
#[derive(Debug, Clone, Copy)]
pub struct Bar {
    enabled: bool,
}

impl Bar {
    pub fn new(wanted: bool) -> Self {
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
        }
    }

    pub fn draw(&self, progress: &Progress) {
        if self.enabled {
            eprint!("\r\x1b[2K{}", line(progress));
        }
    }

    /// Ends the progress line so that what follows starts on a clean one.
    pub fn clear_line(wanted: bool) {
        if wanted && std::io::stderr().is_terminal() {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Draws the core's progress events while a workflow runs, and cancels the task named by
/// `on_interrupt` at Ctrl-C. [`Follow::end`] stops drawing and clears the line before the
/// command prints its result.
pub struct Follow {
    drawing: tokio::task::JoinHandle<()>,
    interrupt: Option<tokio::task::JoinHandle<()>>,
    bar: bool,
}

impl Follow {
    pub fn start(ctx: &crate::Context, on_interrupt: Option<sloop_core::TaskId>) -> Self {
        use tokio::sync::broadcast::error::RecvError;
        let mut events = ctx.core.subscribe();
        let bar = Bar::new(!ctx.json);
        let drawing = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(sloop_core::event::Event::Progress(p)) => bar.draw(&p),
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
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
            bar: !ctx.json,
        }
    }

    /// Stops drawing (waiting for a draw under way) and clears the progress line.
    pub async fn end(self) {
        self.drawing.abort();
        let _ = self.drawing.await;
        if let Some(interrupt) = self.interrupt {
            interrupt.abort();
        }
        Bar::clear_line(self.bar);
    }
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
