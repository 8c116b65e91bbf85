//! Noticing a renewed proxy, whoever renewed it (Sloop, `arcproxy`, `voms-proxy-init`).
//!
//! Grid tools replace the file in different ways: written in place, deleted and created again,
//! or a temporary file renamed over it. The folder is watched (inotify on Linux), not the file,
//! so all of these are seen, and a burst of events becomes one call once the file is quiet.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};

/// How long the file must be quiet before the change is reported.
const SETTLE: Duration = Duration::from_millis(300);

/// Watches a proxy file while it lives; dropping it stops the watch.
pub struct ProxyWatch {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for ProxyWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyWatch").finish_non_exhaustive()
    }
}

/// The proxy's folder could not be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path} for proxy renewals: {message}")]
pub struct WatchError {
    pub path: PathBuf,
    pub message: String,
}

/// Calls `on_change` (on a thread of its own) each time the file at `path` is created, written,
/// replaced or removed.
pub fn watch(path: &Path, on_change: impl Fn() + Send + 'static) -> Result<ProxyWatch, WatchError> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf();
    let name = path.file_name().map(ToOwned::to_owned);
    let failed = |e: notify::Error| WatchError {
        path: folder.clone(),
        message: e.to_string(),
    };
    let (sender, receiver) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        use notify::event::{AccessKind, AccessMode, EventKind};
        let relevant = match event {
            // A lost event (queue overflow) or a watch error: look again, to be safe.
            Err(_) => true,
            Ok(event) if event.need_rescan() => true,
            // Reads are not changes; the end of a write in place is.
            Ok(event)
                if matches!(event.kind, EventKind::Access(kind)
                    if kind != AccessKind::Close(AccessMode::Write)) =>
            {
                false
            }
            Ok(event) => event.paths.iter().any(|p| p.file_name() == name.as_deref()),
        };
        if relevant {
            let _ = sender.send(());
        }
    })
    .map_err(failed)?;
    watcher
        .watch(&folder, RecursiveMode::NonRecursive)
        .map_err(failed)?;
    std::thread::Builder::new()
        .name("proxy-watch".into())
        .spawn(move || {
            // Ends when the watcher, and with it the sender, is dropped.
            while receiver.recv().is_ok() {
                loop {
                    match receiver.recv_timeout(SETTLE) {
                        Ok(()) => continue,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                on_change();
            }
        })
        .map_err(|e| WatchError {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(ProxyWatch { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn wait_for(count: &Arc<Mutex<usize>>, at_least: usize) -> usize {
        for _ in 0..100 {
            let seen = *count.lock().unwrap();
            if seen >= at_least {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        *count.lock().unwrap()
    }

    #[test]
    fn sees_writes_and_renames_over_the_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x509up_u1000");
        let count = Arc::new(Mutex::new(0));
        let seen = count.clone();
        let _watch = watch(&path, move || *seen.lock().unwrap() += 1).unwrap();

        std::fs::write(dir.path().join("other"), "x").unwrap();
        std::fs::write(&path, "one").unwrap();
        assert_eq!(wait_for(&count, 1), 1, "a burst is one change");

        crate::fsutil::write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(wait_for(&count, 2), 2, "a rename over it is a change");

        std::fs::write(dir.path().join("other"), "y").unwrap();
        std::thread::sleep(SETTLE * 2);
        assert_eq!(*count.lock().unwrap(), 2, "other files are not");
    }
}
