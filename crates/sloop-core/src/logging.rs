//! Logging: every front end writes the same log file in the log folder; the app also keeps the
//! latest lines in memory and streams new ones to its log view.
//!
//! Secrets never reach a log: types holding keys or proxies do not implement `Debug` with their
//! contents, and functions handling them use `#[instrument(skip(...))]`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event as TracingEvent, Level, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use ts_rs::TS;

use crate::paths::{Paths, ensure_private_dir};

/// How bad a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<&Level> for LogLevel {
    fn from(level: &Level) -> Self {
        match *level {
            Level::ERROR => Self::Error,
            Level::WARN => Self::Warn,
            Level::INFO => Self::Info,
            Level::DEBUG => Self::Debug,
            Level::TRACE => Self::Trace,
        }
    }
}

/// One line of the log, as the app's log view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct LogLine {
    /// RFC 3339, UTC.
    pub time: String,
    pub level: LogLevel,
    /// The module that wrote it, e.g. `sloop_core::host`.
    pub target: String,
    /// The message followed by its fields (`key=value`).
    pub message: String,
}

/// Keeps the latest log lines and hands new ones to subscribers (the app's log view).
#[derive(Debug, Clone)]
pub struct LogSink {
    inner: Arc<SinkInner>,
}

#[derive(Debug)]
struct SinkInner {
    recent: Mutex<VecDeque<LogLine>>,
    capacity: usize,
    sender: broadcast::Sender<LogLine>,
}

impl LogSink {
    /// A sink keeping at most `capacity` recent lines.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(SinkInner {
                recent: Mutex::new(VecDeque::with_capacity(capacity)),
                capacity,
                sender,
            }),
        }
    }

    /// The latest `limit` lines, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<LogLine> {
        let recent = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        let skip = recent.len().saturating_sub(limit);
        recent.iter().skip(skip).cloned().collect()
    }

    /// New lines as they are written.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.inner.sender.subscribe()
    }

    fn push(&self, line: LogLine) {
        {
            let mut recent = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == self.inner.capacity {
                recent.pop_front();
            }
            recent.push_back(line.clone());
        }
        // No subscriber is fine: the line is kept in `recent`.
        let _ = self.inner.sender.send(line);
    }
}

impl<S: Subscriber> Layer<S> for LogSink {
    fn on_event(&self, event: &TracingEvent<'_>, _ctx: Context<'_, S>) {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        self.push(LogLine {
            time: now_rfc3339(),
            level: meta.level().into(),
            target: meta.target().to_string(),
            message: visitor.finish(),
        });
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields.trim_start().to_string()
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Where log lines go besides the log file.
#[derive(Debug, Default)]
pub struct LogOptions {
    /// Also write to standard error at this filter (e.g. `warn`); the CLI's `-v` raises it.
    pub stderr_filter: Option<String>,
    /// Also keep lines for the app's log view.
    pub sink: Option<LogSink>,
}

/// Keeps the log file writer alive; drop it last.
#[derive(Debug)]
pub struct LogGuard {
    _file: WorkerGuard,
}

/// Logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot create the log folder")]
    Folder(#[source] std::io::Error),
    #[error("logging was already started")]
    AlreadyStarted,
}

/// Starts logging to `paths.log_file()` (level from `SLOOP_LOG`, default `info`) and wherever
/// `options` says. Call once per process.
pub fn init(paths: &Paths, options: LogOptions) -> Result<LogGuard, LoggingError> {
    ensure_private_dir(&paths.log_dir).map_err(LoggingError::Folder)?;
    let appender = tracing_appender::rolling::never(&paths.log_dir, "sloop.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let file_filter =
        EnvFilter::try_from_env("SLOOP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        .with_filter(file_filter);
    let stderr_layer = options.stderr_filter.map(|filter| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .without_time()
            .with_target(false)
            .with_filter(EnvFilter::new(filter))
    });
    let sink_layer = options
        .sink
        .map(|sink| sink.with_filter(EnvFilter::new("info,sloop_core=debug")));
    tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .with(sink_layer)
        .try_init()
        .map_err(|_| LoggingError::AlreadyStarted)?;
    Ok(LogGuard { _file: guard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_keeps_latest_lines_with_fields() {
        let sink = LogSink::new(2);
        let subscriber = tracing_subscriber::registry().with(sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("first");
            tracing::warn!(uri = "qemu:///system", "second");
            tracing::error!("third");
        });
        let lines = sink.recent(10);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].message, "second uri=qemu:///system");
        assert_eq!(lines[0].level, LogLevel::Warn);
        assert_eq!(lines[1].message, "third");
        assert_eq!(sink.recent(1)[0].message, "third");
    }
}
