//! Runs: a machine's bundle running (or run) at a grid site. Each run is a record in
//! `data/runs/<id>/run.toml` written at every step of a submission, so a run survives the app, a
//! reboot and a kill of Sloop in the middle of a submit (it is then listed as unfinished and can
//! be cleaned, never an invisible job at the site). States come live from the CE.

pub mod endpoint;
pub mod fetch;
pub mod guest;
pub mod shell;
pub mod submit;
pub mod xrsl;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::paths::Paths;
use crate::site::{SiteError, arc::ArcClient};

/// Run records' folder.
pub fn runs_dir(paths: &Paths) -> PathBuf {
    paths.data_dir.join("runs")
}

/// One run's folder.
pub fn run_dir(paths: &Paths, id: &str) -> PathBuf {
    runs_dir(paths).join(id)
}

const RECORD: &str = "run.toml";

/// What the user asked the run to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunResources {
    pub cpus: u32,
    pub memory_mib: u32,
    #[ts(type = "number")]
    pub walltime_secs: u64,
}

/// A run's record: what was submitted where, and what was last seen of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunRecord {
    /// `<machine>-<8 hex>`: also the SSH alias of an interactive run.
    pub id: String,
    pub machine: String,
    /// The machine's user: whom a shell in an interactive run logs in as.
    #[serde(default = "default_user")]
    pub user: String,
    pub site: String,
    pub site_url: String,
    /// The CE's id, once the job exists there.
    pub job_id: Option<String>,
    pub delegation_id: Option<String>,
    /// The batch command; `None` for an interactive run.
    pub command: Option<String>,
    /// The inputs' names under /analysis.
    pub inputs: Vec<String>,
    /// Where the inputs were taken from on this computer (for a resume).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(skip)]
    pub input_paths: Vec<PathBuf>,
    pub keep_changes: bool,
    pub resources: RunResources,
    pub base_sha512: String,
    pub base_url: String,
    pub overlay_sha512: String,
    /// The run's own SSH host key (public, OpenSSH): the only key its shell may present.
    pub host_key: String,
    /// RFC 3339 times.
    pub created: String,
    /// Every file was uploaded: the job can start.
    pub submitted: Option<String>,
    /// The CE's state when last asked (REST 1.0 names, e.g. `RUNNING`, `FINISHED`).
    pub state: Option<String>,
    pub state_at: Option<String>,
    /// The run has ended (finished, failed, killed, gone): nothing more will change at the site.
    pub ended: Option<String>,
    /// The command's exit status, for a batch run that got that far.
    pub exit_code: Option<i32>,
    /// Why it failed, in one line, as the job or the CE said.
    pub reason: Option<String>,
    /// `kvm` or `tcg`, as the job reported.
    pub accel: Option<String>,
    /// Where the outputs were fetched to.
    pub outputs: Option<String>,
    /// The local machine made from the run's changes (`--keep-changes`).
    pub changed_machine: Option<String>,
    /// Where the machine of an interactive run last answered SSH (the job's published endpoint,
    /// JSON), tried first by the next shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(skip)]
    pub endpoint: Option<String>,
    /// When the proxy in the machine at the site ends (RFC 3339), as the VM job last reported:
    /// renewals (`run renew`) move it.
    #[serde(default)]
    pub proxy_until: Option<String>,
    /// The SSH relay an interactive run's machine is reached through, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub relay: Option<crate::relay::RelayRef>,
}

fn default_user() -> String {
    crate::machine::create::USER.to_string()
}

/// Where a run is, in the words the front ends show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum RunPhase {
    /// Sloop is preparing or uploading; or a submit was interrupted.
    Submitting,
    /// At the site, waiting (staging, queued).
    Queued,
    Running,
    Finished,
    Failed,
    Killed,
    /// The site no longer knows the job (cleaned there).
    Gone,
}

impl RunPhase {
    /// The phase's word, as the front ends and the JSON say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitting => "submitting",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Killed => "killed",
            Self::Gone => "gone",
        }
    }
}

impl RunRecord {
    pub fn phase(&self) -> RunPhase {
        match self.state.as_deref() {
            _ if self.submitted.is_none() => RunPhase::Submitting,
            None => RunPhase::Queued,
            Some("RUNNING" | "EXITINGLRMS" | "EXECUTED" | "FINISHING" | "KILLING") => {
                RunPhase::Running
            }
            Some("FINISHED") => RunPhase::Finished,
            Some("FAILED") => RunPhase::Failed,
            Some("KILLED") => RunPhase::Killed,
            Some("WIPED" | "GONE") => RunPhase::Gone,
            Some(_) => RunPhase::Queued,
        }
    }

    fn is_final_state(state: &str) -> bool {
        matches!(state, "FINISHED" | "FAILED" | "KILLED" | "WIPED" | "GONE")
    }
}

/// A run as the front ends show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunView {
    #[serde(flatten)]
    pub record: RunRecord,
    pub phase: RunPhase,
}

impl From<RunRecord> for RunView {
    fn from(record: RunRecord) -> Self {
        let phase = record.phase();
        Self { record, phase }
    }
}

/// A run could not be made, found or acted on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("there is no run {0}; `sloop run list` shows them")]
    Unknown(String),
    #[error("cannot read run record {path}: {reason}")]
    Record { path: PathBuf, reason: String },
    #[error("cannot write the run's files in {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    Machine(#[from] crate::machine::MachineError),
    #[error(
        "the base image of {machine} has no address a site can fetch: it came from {location} and no current list names it at an https or http address"
    )]
    BaseNotFetchable { machine: String, location: String },
    #[error("input {path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("two inputs are both called {0}; rename one")]
    DuplicateInput(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "run {id} has not reached the site's end yet ({state}); wait, or cancel it with `sloop run cancel {id}`"
    )]
    NotEnded { id: String, state: String },
    #[error("run {0} was not started with --keep-changes: its changes were not kept")]
    NoChanges(String),
    #[error("cannot make the seed")]
    Seed(#[from] crate::machine::seed::SeedError),
    #[error("cannot make the run's keys")]
    Keys(#[from] crate::machine::keys::KeyError),
    #[error(
        "run {id}'s machine did not say where its SSH answers within {seconds} s (the run is {state}); see `sloop run logs {id}`"
    )]
    NoEndpoint {
        id: String,
        seconds: u64,
        state: String,
    },
    #[error(transparent)]
    Endpoint(#[from] endpoint::BadEndpoint),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error(transparent)]
    Relay(#[from] crate::relay::RelayError),
    #[error("cancelled")]
    Cancelled,
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// The lock a submit holds on its run's folder for as long as it works on the run (the kernel
/// lets go of it when the process ends, however it ends).
const SUBMIT_LOCK: &str = "submit.lock";

/// Takes the submit lock of run `id` (whose folder exists); `None` when another process holds it.
pub fn lock_submit(paths: &Paths, id: &str) -> Result<Option<std::fs::File>, RunError> {
    let path = run_dir(paths, id).join(SUBMIT_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(write_error(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(source)) => Err(RunError::Write { path, source }),
    }
}

/// Refuses when a submit of run `id` is still at work (in this or another Sloop).
pub fn not_being_submitted(paths: &Paths, id: &str) -> Result<(), RunError> {
    match lock_submit(paths, id)? {
        Some(_) => Ok(()),
        None => Err(RunError::Invalid(format!(
            "run {id} is still being submitted; wait for that submit to end, or cancel it"
        ))),
    }
}

/// Writes `record` (whole or not at all).
pub fn save(paths: &Paths, record: &RunRecord) -> Result<(), RunError> {
    let dir = run_dir(paths, &record.id);
    crate::paths::ensure_private_dir(&dir).map_err(write_error(&dir))?;
    let text = toml::to_string(record).map_err(|e| RunError::Write {
        path: dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    crate::fsutil::write_atomic(&dir.join(RECORD), text.as_bytes(), 0o600)
        .map_err(write_error(&dir))
}

/// Run `id`.
pub fn load(paths: &Paths, id: &str) -> Result<RunRecord, RunError> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(RunError::Unknown(id.to_string()));
    }
    let path = run_dir(paths, id).join(RECORD);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RunError::Unknown(id.to_string()));
        }
        Err(e) => {
            return Err(RunError::Record {
                path,
                reason: e.kind().to_string(),
            });
        }
    };
    toml::from_str(&text).map_err(|e| RunError::Record {
        path,
        reason: e.message().to_string(),
    })
}

/// Every run recorded, newest first. A damaged record is logged and skipped.
pub fn list(paths: &Paths) -> Vec<RunRecord> {
    let Ok(entries) = std::fs::read_dir(runs_dir(paths)) else {
        return Vec::new();
    };
    let mut runs: Vec<RunRecord> = entries
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_str()?.to_string();
            match load(paths, &id) {
                Ok(record) => Some(record),
                Err(error) => {
                    tracing::warn!(run = %id, error = %crate::error_chain(&error), "run record skipped");
                    None
                }
            }
        })
        .collect();
    runs.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    runs
}

/// What the job reported in its `sloop-status` file (`key=value` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStatus {
    pub phase: Option<String>,
    pub accel: Option<String>,
    pub reason: Option<String>,
    pub exit: Option<i32>,
    /// When the proxy the job shares into the machine ends (seconds since 1970).
    pub proxy_until: Option<i64>,
}

impl JobStatus {
    pub fn parse(text: &str) -> Self {
        let mut status = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            // A status line is short, printable text from the site: anything else is ignored.
            let value: String = value
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect();
            if value.is_empty() {
                continue;
            }
            match key.trim() {
                "phase" => status.phase = Some(value),
                "accel" => status.accel = Some(value),
                "reason" => status.reason = Some(value),
                "exit" => status.exit = value.parse().ok(),
                "proxy_until" => status.proxy_until = value.parse().ok(),
                _ => {}
            }
        }
        status
    }
}

/// The job's `sloop-status`, when it has written one.
pub async fn job_status(client: &ArcClient, job: &str) -> Result<Option<JobStatus>, SiteError> {
    Ok(client
        .read_small(job, xrsl::STATUS, 16 * 1024)
        .await?
        .map(|bytes| JobStatus::parse(&String::from_utf8_lossy(&bytes))))
}

/// Brings `record` up to date from the CE's live state (and, once the job ended, from its status
/// file and A-REX's failure note). `states` is the CE's answer for all the user's jobs there.
pub async fn refresh(
    client: &ArcClient,
    record: &mut RunRecord,
    states: &[(String, String)],
    now: time::OffsetDateTime,
) -> Result<(), SiteError> {
    let Some(job) = record.job_id.clone() else {
        return Ok(());
    };
    if record.ended.is_some() {
        return Ok(());
    }
    let state = states
        .iter()
        .find(|(id, _)| *id == job)
        .map(|(_, state)| state.clone())
        .unwrap_or_else(|| "GONE".to_string());
    if let Some(status) = job_status(client, &job).await.ok().flatten() {
        record.accel = status.accel.or(record.accel.take());
        if status.exit.is_some() {
            record.exit_code = status.exit;
        }
        if status.reason.is_some() {
            record.reason = status.reason;
        }
        if let Some(until) = status
            .proxy_until
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        {
            record.proxy_until = Some(crate::time_util::rfc3339(until));
        }
    }
    if RunRecord::is_final_state(&state) {
        record.ended = Some(crate::time_util::rfc3339(now));
        if state == "FAILED" && record.reason.is_none() {
            record.reason = client
                .diagnose(&job, "failed")
                .await
                .ok()
                .flatten()
                .map(|text| one_line(&text))
                .filter(|text| !text.is_empty());
        }
        if state == "GONE" && record.reason.is_none() {
            record.reason = Some("the site no longer knows this job (cleaned there)".into());
        }
    }
    record.state = Some(state);
    record.state_at = Some(crate::time_util::rfc3339(now));
    Ok(())
}

/// A site's multi-line text as one short line.
fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_has_the_word_its_json_has() {
        use RunPhase::*;
        for phase in [Submitting, Queued, Running, Finished, Failed, Killed, Gone] {
            assert_eq!(serde_json::json!(phase), phase.as_str());
        }
    }

    #[test]
    fn status_file_is_read_defensively() {
        let status = JobStatus::parse(
            "phase=done\naccel=tcg\nreason=walltime reached\nexit=3\ngarbage\nexit2=x\nproxy_until=1796558400\n",
        );
        assert_eq!(status.proxy_until, Some(1_796_558_400));
        assert_eq!(status.phase.as_deref(), Some("done"));
        assert_eq!(status.accel.as_deref(), Some("tcg"));
        assert_eq!(status.reason.as_deref(), Some("walltime reached"));
        assert_eq!(status.exit, Some(3));
        assert_eq!(JobStatus::parse("exit=\u{1b}[2J\n").exit, None);
    }
}
