//! Pulling an image's bytes into the store: streamed to a partial file while hashed (SHA-512) in
//! the same pass, resumed with HTTP Range after an interruption, checked for size and hash, and
//! only then moved into the read-only store.
//!
//! Network and disk work overlap: the async side receives TLS records while a blocking thread
//! writes and hashes the previous ones, which is how a verified pull keeps up with a plain
//! download followed by `sha512sum` on a two-core laptop. Resuming hashes the bytes already on
//! disk first (the hash state cannot be saved), at disk speed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use sha2::{Digest, Sha512};
use tokio_util::sync::CancellationToken;

use super::Store;
use crate::progress::{Meter, ProgressUnit, Reporter};

/// How often an interrupted transfer is resumed within one pull before giving up (vmcatcher
/// tries five times too). The partial file stays; the next pull goes on from it.
const RESUMES: u32 = 5;
const CHUNK: usize = 1024 * 1024;

/// What to pull.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub sha512: String,
    pub size: u64,
    /// A URL (https, http, or `file://` for a share on the institute's or venue's server), or
    /// a path to a file (a mirror beside a local list).
    pub location: String,
    /// The task name progress is reported under.
    pub task: String,
}

/// Why a pull did not finish. The partial file is kept where resuming makes sense.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("this image is being pulled by another Sloop already; wait for it to finish")]
    Busy,
    #[error(
        "not enough disk space for the image: {needed} bytes needed, {available} free in {dir}; free some space and pull again"
    )]
    NoSpace {
        needed: u64,
        available: u64,
        dir: PathBuf,
    },
    #[error("cannot download {location}: {reason}")]
    Source { location: String, reason: String },
    #[error(
        "{location} is {got} bytes but the image list says {expected}; the file there is not the endorsed image"
    )]
    SizeMismatch {
        location: String,
        expected: u64,
        got: u64,
    },
    #[error(
        "the bytes from {location} do not match the image list's SHA-512; the file there is not the endorsed image, and was discarded"
    )]
    HashMismatch { location: String },
    #[error("download interrupted after {kept} of {size} bytes ({reason}); pull again to resume")]
    Interrupted {
        kept: u64,
        size: u64,
        reason: String,
    },
    #[error(
        "pull cancelled; the {kept} bytes downloaded so far are kept and the next pull resumes from there"
    )]
    Cancelled { kept: u64 },
    #[error("image store file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PullError + '_ {
    move |source| PullError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The partial file being written and the hash of every byte in it.
struct Sink {
    file: File,
    path: PathBuf,
    hasher: Sha512,
    written: u64,
}

impl Sink {
    /// Opens the partial file and hashes what it already holds (beyond `size` it is discarded).
    fn open(
        path: &Path,
        size: u64,
        meter: &mut Meter,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Result<Self, PullError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io(path))?;
        let mut len = file.metadata().map_err(io(path))?.len();
        if len > size {
            file.set_len(0).map_err(io(path))?;
            len = 0;
        }
        let mut hasher = Sha512::new();
        let mut buffer = vec![0; CHUNK];
        let mut done = 0;
        while done < len {
            if cancel.is_cancelled() {
                return Err(PullError::Cancelled { kept: len });
            }
            let n = file.read(&mut buffer).map_err(io(path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            done += n as u64;
            meter.update(reporter, done, false);
        }
        file.seek(SeekFrom::Start(done)).map_err(io(path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            hasher,
            written: done,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), PullError> {
        self.file.write_all(bytes).map_err(io(&self.path))?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Starts again from nothing: the server ignored Range, or the partial was not this image.
    fn restart(&mut self) -> Result<(), PullError> {
        self.file.set_len(0).map_err(io(&self.path))?;
        self.file.seek(SeekFrom::Start(0)).map_err(io(&self.path))?;
        self.hasher = Sha512::new();
        self.written = 0;
        Ok(())
    }
}

/// Brings `wanted` into the store and returns its path there. Verified before it is moved in; a
/// partial download is resumed; a mismatching one is discarded.
pub async fn fetch_verified(
    store: &Store,
    wanted: &Wanted,
    anchors: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<PathBuf, PullError> {
    if let Some(path) = stored_whole(store, wanted) {
        return Ok(path);
    }
    for dir in [store.store_dir(), store.partial_dir()] {
        crate::paths::ensure_private_dir(&dir).map_err(io(&dir))?;
    }
    let lock_path = store.partial_dir().join(format!("{}.lock", wanted.sha512));
    let lock_file = File::create(&lock_path).map_err(io(&lock_path))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| PullError::Busy)?;
    // Another Sloop may have finished it while we waited for nothing.
    if let Some(path) = stored_whole(store, wanted) {
        return Ok(path);
    }
    let partial = store.partial(&wanted.sha512);
    let kept = std::fs::metadata(&partial).map_or(0, |m| m.len().min(wanted.size));
    check_space(&store.partial_dir(), wanted.size.saturating_sub(kept))?;

    let result = match download_and_check(store, wanted, anchors, reporter, cancel).await {
        // A resumed download that does not match may have resumed someone else's bytes (the
        // file at the URL changed): start once more from nothing before calling it wrong.
        Err(PullError::HashMismatch { .. }) if kept > 0 => {
            tracing::warn!(task = %wanted.task, "resumed download did not match; starting again from the beginning");
            remove_if_there(&partial)?;
            download_and_check(store, wanted, anchors, reporter, cancel).await
        }
        other => other,
    };
    if result.is_ok() {
        let _ = std::fs::remove_file(&lock_path);
    }
    result
}

fn stored_whole(store: &Store, wanted: &Wanted) -> Option<PathBuf> {
    store
        .stored(&wanted.sha512)
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == wanted.size))
}

fn remove_if_there(path: &Path) -> Result<(), PullError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

fn check_space(dir: &Path, needed: u64) -> Result<(), PullError> {
    let Ok(stat) = nix::sys::statvfs::statvfs(dir) else {
        return Ok(());
    };
    let available = stat.blocks_available().saturating_mul(stat.fragment_size());
    if available < needed {
        return Err(PullError::NoSpace {
            needed,
            available,
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

async fn download_and_check(
    store: &Store,
    wanted: &Wanted,
    anchors: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<PathBuf, PullError> {
    let partial = store.partial(&wanted.sha512);
    let sink = {
        let (partial_path, size, reporter, cancel, task) = (
            partial.clone(),
            wanted.size,
            reporter.clone(),
            cancel.clone(),
            wanted.task.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut meter = Meter::new(
                &task,
                "checking the partial download",
                Some(size),
                ProgressUnit::Bytes,
            );
            Sink::open(&partial_path, size, &mut meter, &reporter, &cancel)
        })
        .await
        .map_err(|e| io(&partial)(std::io::Error::other(e)))??
    };
    let sink = match local_file(&wanted.location)? {
        None => download(sink, wanted, anchors, reporter, cancel).await?,
        Some(source) => {
            let (wanted, reporter, cancel) = (wanted.clone(), reporter.clone(), cancel.clone());
            tokio::task::spawn_blocking(move || {
                copy_local(sink, &source, &wanted, &reporter, &cancel)
            })
            .await
            .map_err(|e| io(&partial)(std::io::Error::other(e)))??
        }
    };
    finish(store, wanted, sink).await
}

/// Checks size and hash, then moves the partial file into the store, read-only.
async fn finish(store: &Store, wanted: &Wanted, sink: Sink) -> Result<PathBuf, PullError> {
    let Sink {
        file,
        path,
        hasher,
        written,
    } = sink;
    if written != wanted.size {
        remove_if_there(&path)?;
        return Err(PullError::SizeMismatch {
            location: wanted.location.clone(),
            expected: wanted.size,
            got: written,
        });
    }
    let digest = hex::encode(hasher.finalize());
    if digest != wanted.sha512 {
        remove_if_there(&path)?;
        return Err(PullError::HashMismatch {
            location: wanted.location.clone(),
        });
    }
    let target = store.file(&wanted.sha512);
    let store_dir = store.store_dir();
    tokio::task::spawn_blocking(move || -> Result<PathBuf, PullError> {
        file.sync_all().map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))
            .map_err(io(&path))?;
        std::fs::rename(&path, &target).map_err(io(&target))?;
        File::open(&store_dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&store_dir))?;
        Ok(target)
    })
    .await
    .map_err(|e| PullError::Io {
        path: store.store_dir(),
        source: std::io::Error::other(e),
    })?
}

/// The file a location names on this computer: a plain path, or a `file://` URL (local host
/// only); `None` for a network URL.
fn local_file(location: &str) -> Result<Option<PathBuf>, PullError> {
    if !location.contains("://") {
        return Ok(Some(PathBuf::from(location)));
    }
    if !location.starts_with("file://") {
        return Ok(None);
    }
    let bad = |reason: &str| PullError::Source {
        location: location.to_string(),
        reason: reason.to_string(),
    };
    let url = url::Url::parse(location).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.host_str(), None | Some("" | "localhost")) {
        return Err(bad(
            "a file:// address must name a file on this computer (file:///path); mount the share and use its path",
        ));
    }
    url.to_file_path()
        .map(Some)
        .map_err(|()| bad("not a file path"))
}

/// Copies from a file on this computer (a mirror beside a local list, a `file://` share),
/// resuming at the partial file's length.
fn copy_local(
    mut sink: Sink,
    source_path: &Path,
    wanted: &Wanted,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Sink, PullError> {
    let mut source = File::open(source_path).map_err(|e| PullError::Source {
        location: wanted.location.clone(),
        reason: e.to_string(),
    })?;
    let len = source.metadata().map_err(io(source_path))?.len();
    if len != wanted.size {
        return Err(PullError::SizeMismatch {
            location: wanted.location.clone(),
            expected: wanted.size,
            got: len,
        });
    }
    source
        .seek(SeekFrom::Start(sink.written))
        .map_err(io(source_path))?;
    let mut meter = Meter::new(
        &wanted.task,
        "copying",
        Some(wanted.size),
        ProgressUnit::Bytes,
    );
    meter.update(reporter, sink.written, true);
    let mut buffer = vec![0; CHUNK];
    loop {
        if cancel.is_cancelled() {
            sink.file.flush().map_err(io(&sink.path))?;
            return Err(PullError::Cancelled { kept: sink.written });
        }
        let n = source.read(&mut buffer).map_err(io(source_path))?;
        if n == 0 {
            break;
        }
        sink.write(&buffer[..n])?;
        meter.update(reporter, sink.written, false);
    }
    meter.update(reporter, sink.written, true);
    Ok(sink)
}

/// What one HTTP exchange ended with.
enum Transfer {
    Complete,
    /// The connection broke; worth resuming.
    Broken(String),
}

/// Downloads over HTTP(S), resuming after breaks up to [`RESUMES`] times.
async fn download(
    mut sink: Sink,
    wanted: &Wanted,
    anchors: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Sink, PullError> {
    let client = crate::http::client(anchors).map_err(|e| PullError::Source {
        location: wanted.location.clone(),
        reason: e.to_string(),
    })?;
    let mut meter = Meter::new(
        &wanted.task,
        "downloading",
        Some(wanted.size),
        ProgressUnit::Bytes,
    );
    let mut breaks = 0;
    loop {
        if sink.written == wanted.size {
            return Ok(sink);
        }
        let (returned, outcome) =
            transfer(&client, sink, wanted, &mut meter, reporter, cancel).await?;
        sink = returned;
        match outcome {
            Transfer::Complete => return Ok(sink),
            Transfer::Broken(reason) => {
                breaks += 1;
                if breaks > RESUMES {
                    sink.file.flush().map_err(io(&sink.path))?;
                    return Err(PullError::Interrupted {
                        kept: sink.written,
                        size: wanted.size,
                        reason,
                    });
                }
                tracing::warn!(task = %wanted.task, kept = sink.written, "download interrupted ({reason}); resuming");
                meter.stage("resuming");
                tokio::select! {
                    () = cancel.cancelled() => return Err(PullError::Cancelled { kept: sink.written }),
                    () = tokio::time::sleep(Duration::from_millis(500 * u64::from(breaks))) => {}
                }
                meter.stage("downloading");
            }
        }
    }
}

/// One GET from the sink's length on. The writing and hashing run on a blocking thread fed
/// through a channel, so the next bytes arrive while the last are hashed.
async fn transfer(
    client: &reqwest::Client,
    mut sink: Sink,
    wanted: &Wanted,
    meter: &mut Meter,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<(Sink, Transfer), PullError> {
    let source_error = |reason: String| PullError::Source {
        location: wanted.location.clone(),
        reason,
    };
    let offset = sink.written;
    let mut request = client.get(&wanted.location);
    if offset > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
    }
    let response = tokio::select! {
        () = cancel.cancelled() => {
            return Err(PullError::Cancelled { kept: offset });
        }
        response = request.send() => response,
    };
    let response = match response {
        Ok(response) => response,
        // Nothing arrived: an unreachable server is not an interruption to retry forever.
        Err(e) if offset > 0 && (e.is_timeout() || e.is_request()) => {
            return Ok((sink, Transfer::Broken(crate::http::describe(&e))));
        }
        Err(e) => return Err(source_error(crate::http::describe(&e))),
    };
    let status = response.status();
    match status {
        reqwest::StatusCode::PARTIAL_CONTENT if offset > 0 => {
            let start = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match start {
                Some((start, total)) if start == offset => {
                    if let Some(total) = total
                        && total != wanted.size
                    {
                        return Err(PullError::SizeMismatch {
                            location: wanted.location.clone(),
                            expected: wanted.size,
                            got: total,
                        });
                    }
                }
                _ => {
                    return Err(source_error(
                        "the server answered a range request with another range".into(),
                    ));
                }
            }
        }
        reqwest::StatusCode::OK => {
            if offset > 0 {
                tracing::info!(task = %wanted.task, "the server ignores Range; downloading from the beginning");
                sink.restart()?;
            }
            if let Some(len) = response.content_length()
                && len != wanted.size
            {
                return Err(PullError::SizeMismatch {
                    location: wanted.location.clone(),
                    expected: wanted.size,
                    got: len,
                });
            }
        }
        reqwest::StatusCode::RANGE_NOT_SATISFIABLE => {
            // The partial file does not fit the file there: start again from nothing.
            sink.restart()?;
            return Ok((sink, Transfer::Broken("range not satisfiable".into())));
        }
        other => {
            return Err(source_error(format!("the server answered {other}")));
        }
    }

    let size = wanted.size;
    // What the file holds once the body starts: the offset for a 206, nothing after a restart.
    let mut received = sink.written;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let writer = tokio::task::spawn_blocking(move || -> (Sink, Result<(), PullError>) {
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = sink.write(&chunk) {
                return (sink, Err(e));
            }
        }
        let flushed = sink.file.flush().map_err(io(&sink.path));
        (sink, flushed)
    });
    let mut stream = response.bytes_stream();
    meter.update(reporter, received, true);
    let outcome = loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => break Err(PullError::Cancelled { kept: received }),
            next = stream.next() => next,
        };
        match next {
            None => break Ok(Transfer::Complete),
            Some(Err(e)) => break Ok(Transfer::Broken(crate::http::describe(&e))),
            Some(Ok(chunk)) => {
                received += chunk.len() as u64;
                if received > size {
                    break Err(PullError::SizeMismatch {
                        location: wanted.location.clone(),
                        expected: size,
                        got: received,
                    });
                }
                if tx.send(chunk).await.is_err() {
                    // The writer stopped: its error is returned below.
                    break Ok(Transfer::Complete);
                }
                meter.update(reporter, received, false);
            }
        }
    };
    drop(tx);
    let (sink, written) = writer.await.map_err(|e| PullError::Io {
        path: store_partial_name(wanted),
        source: std::io::Error::other(e),
    })?;
    meter.update(reporter, sink.written, true);
    written?;
    let written = sink.written;
    match outcome {
        Ok(Transfer::Complete) if written < size => Ok((
            sink,
            Transfer::Broken(format!(
                "the connection closed after {written} of {size} bytes"
            )),
        )),
        Ok(transfer) => Ok((sink, transfer)),
        Err(e) => {
            // Bytes beyond the listed size: what is on disk is not this image.
            if let PullError::SizeMismatch { .. } = e {
                let _ = std::fs::remove_file(&sink.path);
            }
            Err(e)
        }
    }
}

/// Names the download in an error about its writer thread.
fn store_partial_name(wanted: &Wanted) -> PathBuf {
    PathBuf::from(format!("{}.part", wanted.sha512))
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) as (START, TOTAL).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some((start.parse().ok()?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_name_files_here_only() {
        let here = |l: &str| local_file(l).unwrap();
        assert_eq!(
            here("/srv/images/a.img"),
            Some(PathBuf::from("/srv/images/a.img"))
        );
        assert_eq!(
            here("file:///srv/images/a%20b.img"),
            Some(PathBuf::from("/srv/images/a b.img"))
        );
        assert_eq!(
            here("file://localhost/srv/a.img"),
            Some(PathBuf::from("/srv/a.img"))
        );
        assert_eq!(here("https://images.example.org/a.img"), None);
        let error = local_file("file://fileserver.example.org/share/a.img")
            .unwrap_err()
            .to_string();
        assert!(error.contains("mount the share"), "{error}");
    }

    #[test]
    fn content_range_is_read() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes x-2/3"), None);
    }
}
