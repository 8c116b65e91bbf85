//! Bringing a run's results back: `/analysis/output` and the logs, and with `--keep-changes`
//! the run's own disk changes. Everything the site sends is untrusted: names are checked before
//! they become paths, files land in a staging folder that is moved into place only when whole,
//! and the changes' qcow2 header is checked by Sloop before any QEMU tool opens it.

use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use super::{RunError, RunRecord, xrsl};
use crate::progress::{Meter, ProgressUnit, Reporter};
use crate::site::{SiteError, arc::ArcClient};

/// Deepest folder nesting and most files taken from a run's output.
const MAX_DEPTH: usize = 16;
const MAX_FILES: usize = 100_000;

/// What a fetch brought back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Fetched {
    pub run: String,
    /// The folder the outputs are in.
    pub dir: String,
    /// Files written, relative to `dir`.
    pub files: Vec<String>,
    #[ts(type = "number")]
    pub bytes: u64,
    /// The local machine made from the run's changes (`--keep-changes`).
    pub changed_machine: Option<String>,
}

/// A name from the site that may become one path component here.
fn plain(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    ok.then_some(name)
}

/// Downloads the job's session file `name` to `to`, whole or not at all; false when the site
/// has no such file.
/// Bytes downloaded so far, and where they are reported.
struct Tally<'a> {
    meter: Meter,
    done: u64,
    reporter: &'a Reporter,
}

async fn download(
    client: &ArcClient,
    job: &str,
    name: &str,
    to: &Path,
    tally: &mut Tally<'_>,
    cancel: &CancellationToken,
) -> Result<bool, RunError> {
    let Some(response) = client.get_file(job, name).await? else {
        return Ok(false);
    };
    let partial = to.with_extension("partial-download");
    let write_error = super::write_error(to);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(super::write_error(&partial))?;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        if cancel.is_cancelled() {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(RunError::Cancelled);
        }
        let chunk = chunk.map_err(|e| SiteError::Protocol {
            site: String::new(),
            what: format!("downloading {name}"),
            detail: crate::http::describe(&e),
        })?;
        file.write_all(&chunk)
            .await
            .map_err(super::write_error(&partial))?;
        tally.done += chunk.len() as u64;
        tally.meter.update(tally.reporter, tally.done, false);
    }
    file.sync_all()
        .await
        .map_err(super::write_error(&partial))?;
    drop(file);
    tokio::fs::rename(&partial, to).await.map_err(write_error)?;
    Ok(true)
}

/// The files under the job's session folder `dir`, as session-relative paths.
async fn walk(client: &ArcClient, job: &str, dir: &str) -> Result<Vec<String>, RunError> {
    let mut out = Vec::new();
    let mut pending = vec![(dir.trim_end_matches('/').to_string(), 0usize)];
    while let Some((folder, depth)) = pending.pop() {
        let Some(listing) = client.list_dir(job, &folder).await? else {
            continue;
        };
        for file in &listing.files {
            if let Some(file) = plain(file) {
                out.push(format!("{folder}/{file}"));
            } else {
                tracing::warn!(name = %file, "a name from the site that is not a plain name; skipped");
            }
        }
        if depth < MAX_DEPTH {
            for sub in &listing.dirs {
                if let Some(sub) = plain(sub) {
                    pending.push((format!("{folder}/{sub}"), depth + 1));
                }
            }
        }
        if out.len() > MAX_FILES {
            return Err(RunError::Invalid(format!(
                "the run's output holds more than {MAX_FILES} files; fetch it with ARC's tools"
            )));
        }
    }
    out.sort();
    Ok(out)
}

/// Fetches the outputs and logs of `record` into `dest` (made; it must not exist yet).
pub async fn outputs(
    client: &ArcClient,
    record: &RunRecord,
    dest: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Fetched, RunError> {
    let job = record
        .job_id
        .as_deref()
        .ok_or_else(|| RunError::Invalid(format!("run {} never reached the site", record.id)))?;
    if dest.exists() {
        return Err(RunError::Invalid(format!(
            "{} exists already; give another folder with --to",
            dest.display()
        )));
    }
    let parent = dest.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(parent).map_err(super::write_error(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".sloop-fetch-")
        .tempdir_in(parent)
        .map_err(super::write_error(parent))?;
    let outputs = walk(client, job, xrsl::OUTPUT_DIR).await?;
    let logs = [xrsl::CONSOLE_LOG, xrsl::STDOUT, xrsl::STDERR, xrsl::STATUS];
    let task = format!("fetch:{}", record.id);
    let mut tally = Tally {
        meter: Meter::new(&task, "downloading the outputs", None, ProgressUnit::Bytes),
        done: 0,
        reporter,
    };
    tally.meter.update(reporter, 0, true);
    let mut files = Vec::new();
    let prefix = xrsl::OUTPUT_DIR.trim_end_matches('/');
    for name in &outputs {
        let relative = format!("output{}", &name[prefix.len()..]);
        let to = staging.path().join(&relative);
        if let Some(folder) = to.parent() {
            std::fs::create_dir_all(folder).map_err(super::write_error(folder))?;
        }
        if download(client, job, name, &to, &mut tally, cancel).await? {
            files.push(relative);
        }
    }
    let logs_dir = staging.path().join("logs");
    std::fs::create_dir_all(&logs_dir).map_err(super::write_error(&logs_dir))?;
    for log in logs {
        if download(client, job, log, &logs_dir.join(log), &mut tally, cancel).await? {
            files.push(format!("logs/{log}"));
        }
    }
    tally.meter.update(reporter, tally.done, true);
    let done = tally.done;
    let staged = staging.keep();
    std::fs::rename(&staged, dest).map_err(super::write_error(dest))?;
    Ok(Fetched {
        run: record.id.clone(),
        dir: dest.display().to_string(),
        files,
        bytes: done,
        changed_machine: None,
    })
}

/// Downloads the run's changes (`changes.qcow2`) to `to` and checks them: a qcow2 layer that
/// names no backing file, no external data, no encryption, no snapshots.
pub async fn changes(
    client: &ArcClient,
    record: &RunRecord,
    to: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<PathBuf, RunError> {
    let job = record
        .job_id
        .as_deref()
        .ok_or_else(|| RunError::Invalid(format!("run {} never reached the site", record.id)))?;
    let task = format!("fetch:{}", record.id);
    let mut tally = Tally {
        meter: Meter::new(
            &task,
            "downloading the run's changes",
            None,
            ProgressUnit::Bytes,
        ),
        done: 0,
        reporter,
    };
    if !download(client, job, xrsl::CHANGES, to, &mut tally, cancel).await? {
        return Err(RunError::Invalid(format!(
            "run {} returned no changes (the machine did not power off cleanly?); see `sloop run logs {}`",
            record.id, record.id
        )));
    }
    let head =
        crate::bundle::overlay::read_head(to, 0, u64::MAX).map_err(super::write_error(to))?;
    if let Err(problem) = crate::bundle::overlay::parse_unbacked(&head) {
        let _ = std::fs::remove_file(to);
        return Err(RunError::Invalid(format!(
            "the changes run {} returned {problem}; they were not used",
            record.id
        )));
    }
    Ok(to.to_path_buf())
}

/// Writes the run's `changes` into the overlay of machine folder `overlay` (a fresh import of
/// the run's bundle): the changes are pointed at it, then committed into it.
pub async fn commit_changes(changes: &Path, overlay: &Path) -> Result<(), RunError> {
    let qemu_img = crate::programs::find_program("qemu-img")
        .ok_or_else(|| RunError::Invalid("qemu-img is missing; install qemu-utils".into()))?;
    let failed = |step: &str, said: String| {
        RunError::Invalid(format!("cannot apply the run's changes ({step}): {said}"))
    };
    let overlay_name = overlay.display().to_string();
    crate::bundle::overlay::rebase_unsafe(
        &qemu_img,
        changes,
        &overlay_name,
        "point the changes at the machine",
    )
    .await
    .map_err(|e| failed("rebase", e.to_string()))?;
    let output = tokio::process::Command::new(&qemu_img)
        .args(["commit", "-q", "-f", "qcow2"])
        .arg(changes)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| failed("commit", e.to_string()))?;
    if !output.status.success() {
        return Err(failed(
            "commit",
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_become_paths() {
        assert_eq!(plain("result.root"), Some("result.root"));
        for bad in ["", ".", "..", "a/b", "../etc", "x\0y"] {
            assert_eq!(plain(bad), None, "{bad:?}");
        }
    }
}
