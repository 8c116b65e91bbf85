//! Following a running `qemu-img … -p`: its progress lines become [`Meter`] updates in bytes of
//! the disk, cancelling kills it, and a failure is told by its last line on stderr. Shared by
//! the bundle's copy of a machine's changes and the preparation of a runnable base.

use tokio::io::AsyncReadExt as _;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

use crate::progress::{Meter, Reporter};

/// How a followed qemu-img ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Done,
    Cancelled,
    /// It failed; the last line it wrote on stderr.
    Failed(String),
}

/// Follows `child` (spawned with stdout and stderr piped, `kill_on_drop`) to its end.
pub(crate) async fn follow(
    mut child: Child,
    disk_bytes: u64,
    meter: &mut Meter,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> std::io::Result<Ended> {
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(std::io::Error::other("qemu-img's output is not piped"));
    };
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    // `-p` prints "    (12.34/100%)\r" as it goes.
    let mut buffer = [0u8; 256];
    let mut line = Vec::new();
    loop {
        let read = tokio::select! {
            () = cancel.cancelled() => {
                let _ = child.kill().await;
                return Ok(Ended::Cancelled);
            }
            read = stdout.read(&mut buffer) => read?,
        };
        if read == 0 {
            break;
        }
        for &byte in &buffer[..read] {
            if byte == b'\r' || byte == b'\n' {
                if let Some(percent) = parse_percent(&line) {
                    let done = (disk_bytes as f64 * percent / 100.0) as u64;
                    meter.update(reporter, done.min(disk_bytes), false);
                }
                line.clear();
            } else {
                line.push(byte);
            }
        }
    }
    let status = child.wait().await?;
    let said = errors.await.unwrap_or_default();
    if status.success() {
        meter.update(reporter, disk_bytes, true);
        Ok(Ended::Done)
    } else {
        Ok(Ended::Failed(last_line(&said)))
    }
}

/// The last line of `text` that says something.
pub(crate) fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no message)")
        .to_string()
}

fn parse_percent(line: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(line).ok()?.trim();
    let inner = text.strip_prefix('(')?.strip_suffix("/100%)")?;
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_read() {
        assert_eq!(parse_percent(b"    (12.50/100%)"), Some(12.5));
        assert_eq!(parse_percent(b"garbage"), None);
    }

    #[test]
    fn the_last_line_that_says_something_is_kept() {
        assert_eq!(last_line("a\nqemu-img: it broke\n\n"), "qemu-img: it broke");
        assert_eq!(last_line(""), "(no message)");
    }
}
