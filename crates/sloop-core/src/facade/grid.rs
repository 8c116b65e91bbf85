//! The grid workflows of [`Core`]: sites, and runs of machines at them (submit = bundle +
//! seed + delegation + job + uploads; list and info ask the CE live; fetch brings outputs and,
//! when kept, the run's changes back as a new machine).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{Core, CoreError, TaskId};
use crate::bundle::import::ImportRequest;
use crate::machine;
use crate::run::fetch::{self, Fetched};
use crate::run::submit::{self, SubmitRequest};
use crate::run::{self, RunError, RunPhase, RunRecord, RunView};
use crate::site::{self, Site, SiteInfo};
use crate::ssh;

/// What a run's logs say so far.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunLogs {
    pub run: String,
    /// The VM job's own log (its stdout at the site).
    pub job: Option<String>,
    /// The machine's console.
    pub console: Option<String>,
    /// The command's output so far (batch runs).
    pub command: Option<String>,
}

/// Most bytes of each log `run logs` shows.
const LOG_BYTES: usize = 256 * 1024;
/// How often a shell waiting for a run asks its site whether the machine answers yet.
const ENDPOINT_POLL: Duration = Duration::from_secs(3);
/// How long a shell tries where a run's machine last answered before asking its site.
const KNOWN_ENDPOINT_TRY: Duration = Duration::from_secs(5);
/// A run's machine that has published its endpoint gets at least this long to let us log in.
const RUN_LOGIN_MIN: Duration = Duration::from_secs(30);

impl Core {
    fn proxy_path(&self) -> PathBuf {
        crate::proxy::default_path()
    }

    /// The sites the user added.
    pub async fn sites(&self) -> Result<Vec<Site>, CoreError> {
        self.blocking(|paths, _| Ok(site::list(paths)?)).await
    }

    /// Adds a site (an ARC CE's REST endpoint).
    pub async fn add_site(&self, name: &str, url: &str) -> Result<Site, CoreError> {
        let (name, url) = (name.to_string(), url.to_string());
        self.blocking(move |paths, _| Ok(site::add(paths, &name, &url, OffsetDateTime::now_utc())?))
            .await
    }

    /// Sets (or clears) the relay interactive runs at site `name` go through by default.
    pub async fn set_site_relay(&self, name: &str, relay: Option<&str>) -> Result<Site, CoreError> {
        let (name, relay) = (name.to_string(), relay.map(str::to_string));
        self.blocking(move |paths, _| Ok(site::set_relay(paths, &name, relay.as_deref())?))
            .await
    }

    /// Removes a site from the list.
    pub async fn remove_site(&self, name: &str) -> Result<Site, CoreError> {
        let name = name.to_string();
        self.blocking(move |paths, _| Ok(site::remove(paths, &name)?))
            .await
    }

    /// Asks site `name`, with the user's proxy, how it is.
    pub async fn site_info(&self, name: &str) -> Result<SiteInfo, CoreError> {
        let site = site::get(&self.paths, name)?;
        Ok(site::info(
            &site,
            &self.proxy_path(),
            &self.config()?.ca_dir(),
            OffsetDateTime::now_utc(),
        )
        .await?)
    }

    /// The task a submit of `machine` runs as.
    pub fn submit_task(&self, machine: &str) -> TaskId {
        TaskId(submit::task_name(machine))
    }

    /// Submits a machine to a site (`submit:<machine>`, cancellable).
    pub async fn submit(&self, request: &SubmitRequest) -> Result<RunView, CoreError> {
        let task = self.tasks.begin(self.submit_task(&request.machine))?;
        let reporter = self.reporter();
        let submitted = async {
            let conn = self.connection().await?;
            Ok(submit::submit(
                &self.paths,
                self.config()?,
                &conn,
                request,
                &self.proxy_path(),
                &reporter,
                task.token(),
                OffsetDateTime::now_utc(),
            )
            .await?)
        }
        .await;
        self.finished(task.id(), &submitted);
        let record: RunRecord = self.after(submitted).await?;
        Ok(record.into())
    }

    /// Every run, newest first; when `live`, each unfinished one is first brought up to date
    /// from its site (a site that cannot be asked leaves its runs as last seen).
    pub async fn runs(&self, live: bool) -> Result<Vec<RunView>, CoreError> {
        let mut runs = run::list(&self.paths);
        if live {
            let mut by_site: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, record) in runs.iter().enumerate() {
                if record.ended.is_none() && record.job_id.is_some() {
                    by_site.entry(record.site.clone()).or_default().push(i);
                }
            }
            for (site_name, indices) in by_site {
                match self.refresh_at(&site_name, &mut runs, &indices).await {
                    Ok(()) => {}
                    Err(error) => tracing::warn!(
                        site = %site_name,
                        error = %crate::error_chain(&error),
                        "runs at this site not refreshed"
                    ),
                }
            }
        }
        Ok(runs.into_iter().map(RunView::from).collect())
    }

    async fn refresh_at(
        &self,
        site_name: &str,
        runs: &mut [RunRecord],
        indices: &[usize],
    ) -> Result<(), CoreError> {
        let (client, _) = self.client_for(site_name, runs.get(indices[0]))?;
        let states = client.states().await?;
        let now = OffsetDateTime::now_utc();
        for &i in indices {
            let before = runs[i].clone();
            run::refresh(&client, &mut runs[i], &states, now).await?;
            release_relay(&mut runs[i], false).await?;
            if runs[i] != before {
                run::save(&self.paths, &runs[i])?;
            }
        }
        Ok(())
    }

    /// A client for a run's site: the site as added, else as the run recorded it (a site
    /// removed from the list still serves its runs).
    fn client_for(
        &self,
        site_name: &str,
        record: Option<&RunRecord>,
    ) -> Result<(site::arc::ArcClient, String), CoreError> {
        let site = match site::get(&self.paths, site_name) {
            Ok(site) => site,
            Err(error) => match record {
                Some(record) => Site {
                    name: site_name.parse()?,
                    url: record.site_url.clone(),
                    added: record.created.clone(),
                    relay: None,
                },
                None => return Err(error.into()),
            },
        };
        Ok(site::client(
            &site,
            &self.proxy_path(),
            &self.config()?.ca_dir(),
            OffsetDateTime::now_utc(),
        )?)
    }

    /// Run `id`, brought up to date from its site when it has not ended.
    pub async fn run_info(&self, id: &str) -> Result<RunView, CoreError> {
        let mut record = run::load(&self.paths, id)?;
        if record.ended.is_none() && record.job_id.is_some() {
            let (client, _) = self.client_for(&record.site.clone(), Some(&record))?;
            let states = client.states().await?;
            run::refresh(&client, &mut record, &states, OffsetDateTime::now_utc()).await?;
            release_relay(&mut record, false).await?;
            run::save(&self.paths, &record)?;
        }
        Ok(record.into())
    }

    /// The run's logs so far: the job's, the machine's console, the command's output.
    pub async fn run_logs(&self, id: &str) -> Result<RunLogs, CoreError> {
        let record = run::load(&self.paths, id)?;
        let Some(job) = record.job_id.clone() else {
            return Ok(RunLogs {
                run: record.id,
                job: None,
                console: None,
                command: None,
            });
        };
        let (client, _) = self.client_for(&record.site.clone(), Some(&record))?;
        let text = |bytes: Option<Vec<u8>>| bytes.map(|b| String::from_utf8_lossy(&b).into_owned());
        let command_log = format!("{}/{}", run::xrsl::ANALYSIS, run::guest::COMMAND_LOG);
        Ok(RunLogs {
            job: text(
                client
                    .read_small(&job, run::xrsl::STDOUT, LOG_BYTES)
                    .await?,
            ),
            console: text(
                client
                    .read_small(&job, run::xrsl::CONSOLE_LOG, LOG_BYTES)
                    .await?,
            ),
            command: text(client.read_small(&job, &command_log, LOG_BYTES).await?),
            run: record.id,
        })
    }

    /// Brings the user's current proxy (say, just renewed) to run `id` while it is up: renews the
    /// site's delegation (the CE's own transfers use it) and hands the job a fresh proxy signed
    /// by it (session file `sloop-proxy-renewal.pem`), which the VM job places in the machine
    /// within seconds. ARC 6.17 does not bring a renewed delegation into a running job itself.
    pub async fn renew_run(&self, id: &str) -> Result<RunView, CoreError> {
        let record = run::load(&self.paths, id)?;
        let (Some(job), None) = (record.job_id.clone(), record.ended.as_ref()) else {
            return Err(RunError::Invalid(format!(
                "run {id} is not at its site now; only a queued or running run takes a new proxy"
            ))
            .into());
        };
        let (client, _) = self.client_for(&record.site.clone(), Some(&record))?;
        let proxy = self.proxy_path();
        let now = OffsetDateTime::now_utc();
        if let Some(delegation) = &record.delegation_id {
            let csr = client.renew_delegation(delegation).await?;
            let pem =
                crate::proxy::make::delegate(&proxy, &csr, now).map_err(site::SiteError::from)?;
            client.put_delegation(delegation, pem).await?;
        }
        let fresh = {
            let proxy = proxy.clone();
            tokio::task::spawn_blocking(move || crate::proxy::make::for_job(&proxy, now))
                .await
                .map_err(|e| CoreError::Internal(e.to_string()))?
                .map_err(site::SiteError::from)?
        };
        client
            .put_file(&job, run::xrsl::PROXY_RENEWAL, fresh.to_vec().into())
            .await?;
        tracing::info!(run = %id, "proxy renewed for the run");
        self.run_info(id).await
    }

    /// Brings the user's proxy to every run that is at its site and has not ended, as
    /// [`Core::renew_run`]; what fails is logged (a run that just ended, a site that is down).
    pub async fn renew_runs(&self) {
        for record in run::list(&self.paths) {
            if record.job_id.is_none() || record.ended.is_some() {
                continue;
            }
            match self.renew_run(&record.id).await {
                Ok(_) => tracing::info!(run = %record.id, "renewed proxy brought to the run"),
                Err(e) => tracing::warn!(
                    run = %record.id,
                    "cannot bring the renewed proxy to the run: {}",
                    crate::error_chain(&e)
                ),
            }
        }
    }

    /// Asks the site to stop run `id`; the VM job then powers its machine off.
    pub async fn cancel_run(&self, id: &str) -> Result<RunView, CoreError> {
        let record = run::load(&self.paths, id)?;
        let Some(job) = record.job_id.clone() else {
            return Err(RunError::Invalid(format!(
                "run {id} never reached the site; remove it with `sloop run clean {id}`"
            ))
            .into());
        };
        let (client, _) = self.client_for(&record.site.clone(), Some(&record))?;
        act_on(&client, &record, "kill", &job).await?;
        tracing::info!(run = %id, "cancel asked");
        self.run_info(id).await
    }

    /// A login session in interactive run `id`'s machine at its site (`sloop run shell`, the
    /// app's terminal): waits up to `within` for the run to start and its machine to publish
    /// where its SSH answers, then logs in with the run's key, accepting only the run's host key.
    /// A batch run, a run that ended or ends meanwhile, and a run not fully submitted are refused.
    pub async fn run_shell(&self, id: &str, within: Duration) -> Result<ssh::Session, CoreError> {
        self.run_shell_via(id, within, None).await
    }

    /// [`Core::run_shell`], through the jump host `via` (`USER@HOST[:PORT]`, logged in to as the
    /// user, its host key checked against their known_hosts) when given.
    pub async fn run_shell_via(
        &self,
        id: &str,
        within: Duration,
        via: Option<&str>,
    ) -> Result<ssh::Session, CoreError> {
        let started = Instant::now();
        let via = via
            .map(str::parse::<crate::relay::RelayAddr>)
            .transpose()
            .map_err(RunError::from)?;
        let mut record = run::load(&self.paths, id)?;
        if record.command.is_some() {
            return Err(RunError::Invalid(format!(
                "run {id} runs a command and powers off; a shell needs a run submitted without --command"
            ))
            .into());
        }
        // Where the machine last answered, first: no question to the site while it answers
        // there (its host key pinned, as always); else the site is asked where it is now.
        if record.ended.is_none()
            && let Some(known) = record
                .endpoint
                .as_deref()
                .and_then(|text| run::endpoint::Endpoint::parse(text).ok())
        {
            match run::shell::connect(
                &self.paths,
                &record,
                &known,
                via.as_ref(),
                KNOWN_ENDPOINT_TRY,
            )
            .await
            {
                Ok(session) => return Ok(session),
                Err(error) => tracing::info!(
                    run = %id,
                    error = %crate::error_chain(&error),
                    "no login where the machine last answered; asking its site"
                ),
            }
        }
        let (client, _) = self.client_for(&record.site.clone(), Some(&record))?;
        let endpoint = loop {
            if record.ended.is_none() && record.job_id.is_some() {
                let states = client.states().await?;
                run::refresh(&client, &mut record, &states, OffsetDateTime::now_utc()).await?;
                release_relay(&mut record, false).await?;
                run::save(&self.paths, &record)?;
            }
            let phase = record.phase();
            let state = phase.as_str().to_string();
            match phase {
                RunPhase::Submitting => {
                    return Err(RunError::Invalid(format!(
                        "run {id} was not submitted completely; `sloop run resume {id}` submits it again"
                    ))
                    .into());
                }
                RunPhase::Finished | RunPhase::Failed | RunPhase::Killed | RunPhase::Gone => {
                    return Err(RunError::Invalid(format!(
                        "run {id} has ended ({state}): its machine is no longer up"
                    ))
                    .into());
                }
                RunPhase::Running => {
                    let job = record.job_id.clone().unwrap_or_default();
                    if let Some(endpoint) = run::shell::published(&client, &job).await? {
                        break endpoint;
                    }
                }
                RunPhase::Queued => {}
            }
            if started.elapsed() + ENDPOINT_POLL >= within {
                return Err(RunError::NoEndpoint {
                    id: id.to_string(),
                    seconds: within.as_secs(),
                    state,
                }
                .into());
            }
            tokio::time::sleep(ENDPOINT_POLL).await;
        };
        tracing::info!(run = %id, endpoint = %endpoint.address(), "run shell");
        let left = within.saturating_sub(started.elapsed()).max(RUN_LOGIN_MIN);
        let session =
            run::shell::connect(&self.paths, &record, &endpoint, via.as_ref(), left).await?;
        record.endpoint = Some(endpoint.to_json());
        run::save(&self.paths, &record)?;
        Ok(session)
    }

    /// Writes the ssh config of the user's machines and of their interactive runs whose machine
    /// answers now (asked of each run's site; a site that does not answer leaves its runs out):
    /// `sloop ssh-config`.
    pub async fn ssh_config(&self) -> Result<(PathBuf, String), CoreError> {
        let mut more = String::new();
        for record in run::list(&self.paths) {
            if record.command.is_some() || record.ended.is_some() || record.submitted.is_none() {
                continue;
            }
            let Some(job) = record.job_id.clone() else {
                continue;
            };
            let asked = async {
                let (client, _) = self.client_for(&record.site.clone(), Some(&record))?;
                Ok::<_, CoreError>(run::shell::published(&client, &job).await?)
            };
            match tokio::time::timeout(Duration::from_secs(15), asked).await {
                Ok(Ok(Some(endpoint))) => {
                    match run::shell::ssh_config_block(&self.paths, &record, &endpoint)? {
                        Some(block) => more.push_str(&block),
                        None => more.push_str(&format!(
                            "\n# run {}: its machine answers only on its worker node; submit it with --relay\n",
                            record.id
                        )),
                    }
                }
                Ok(Ok(None)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(run = %record.id, error = %crate::error_chain(&error), "run left out of the ssh config")
                }
                Err(_) => {
                    tracing::warn!(run = %record.id, "its site did not answer in 15 s: run left out of the ssh config")
                }
            }
        }
        let paths = self.paths.clone();
        Ok(tokio::task::spawn_blocking(move || machine::ssh_config(&paths, &more)).await??)
    }

    /// Removes run `id` at its site (killing it first if it still runs) and here. Fetched
    /// outputs stay where they were fetched to.
    pub async fn clean_run(&self, id: &str) -> Result<(), CoreError> {
        let mut record = run::load(&self.paths, id)?;
        run::not_being_submitted(&self.paths, id)?;
        // The run's key leaves the relay first: a clean that cannot remove it stops here.
        release_relay(&mut record, true).await?;
        run::save(&self.paths, &record)?;
        if let Some(job) = record.job_id.clone() {
            let (client, _) = self.client_for(&record.site.clone(), Some(&record))?;
            if record.ended.is_none() {
                client.act("kill", &[&job]).await?;
                wait_until_ended(&client, &record, &job).await?;
            }
            act_on(&client, &record, "clean", &job).await?;
        }
        let dir = run::run_dir(&self.paths, id);
        std::fs::remove_dir_all(&dir).map_err(|source| RunError::Write { path: dir, source })?;
        tracing::info!(run = %id, "run cleaned");
        Ok(())
    }

    /// Submits run `id` again after a submit that did not end (Sloop was killed, the laptop
    /// slept or lost the network): what of it reached the site is taken back first (as `clean`
    /// does), so the site never holds two jobs of one run; then the same machine, command, inputs
    /// and resources are submitted from the start, as the same run id.
    pub async fn resume_run(&self, id: &str) -> Result<RunView, CoreError> {
        let record = run::load(&self.paths, id)?;
        if record.submitted.is_some() {
            return Err(RunError::Invalid(format!(
                "run {id} was submitted whole: there is nothing to resume (`sloop run info {id}`)"
            ))
            .into());
        }
        // (A folder input is one path and many names: only a record without paths is refused.)
        if record.input_paths.is_empty() && !record.inputs.is_empty() {
            return Err(RunError::Invalid(format!(
                "run {id}'s record does not say where its inputs came from; clean it and submit again"
            ))
            .into());
        }
        let request = SubmitRequest {
            machine: record.machine.clone(),
            site: record.site.clone(),
            command: record.command.clone(),
            inputs: record.input_paths.clone(),
            walltime_secs: Some(record.resources.walltime_secs),
            cpus: Some(record.resources.cpus),
            memory_mib: Some(record.resources.memory_mib),
            keep_changes: record.keep_changes,
            as_run: Some(id.to_string()),
            relay: record.relay.as_ref().map(|r| r.addr().to_string()),
        };
        self.clean_run(id).await?;
        tracing::info!(run = %id, "resuming: submitting again");
        self.submit(&request).await
    }

    /// Where a fetch of `record` goes unless the user says: `runs/<id>` in the machine's work
    /// directory (so the outputs also appear in the local machine, at /analysis/runs/<id>),
    /// else the run's folder in Sloop's data.
    pub fn default_fetch_dir(&self, record: &RunRecord) -> PathBuf {
        let work_dir = record
            .machine
            .parse()
            .ok()
            .and_then(|name| machine::load(&self.paths, &name).ok())
            .and_then(|manifest| manifest.work_dir);
        match work_dir {
            Some(dir) => dir.join("runs").join(&record.id),
            None => run::run_dir(&self.paths, &record.id).join("outputs"),
        }
    }

    /// Fetches run `id`'s outputs and logs (`fetch:<id>`); with `keep_changes`, also its disk
    /// changes, as a new machine `<machine>-from-<suffix>`.
    pub async fn fetch_run(
        &self,
        id: &str,
        to: Option<&Path>,
        keep_changes: bool,
    ) -> Result<Fetched, CoreError> {
        let task = self.tasks.begin(TaskId::new("fetch", id))?;
        let reporter = self.reporter();
        let fetched = self
            .fetch_inner(id, to, keep_changes, &reporter, task.token())
            .await;
        self.finished(task.id(), &fetched);
        self.after(fetched).await
    }

    async fn fetch_inner(
        &self,
        id: &str,
        to: Option<&Path>,
        keep_changes: bool,
        reporter: &crate::progress::Reporter,
        cancel: &CancellationToken,
    ) -> Result<Fetched, CoreError> {
        let view = self.run_info(id).await?;
        let mut record = view.record;
        if record.ended.is_none() {
            return Err(RunError::NotEnded {
                id: id.to_string(),
                state: record.state.clone().unwrap_or_else(|| "submitting".into()),
            }
            .into());
        }
        if keep_changes && !record.keep_changes {
            return Err(RunError::NoChanges(id.to_string()).into());
        }
        let (client, _) = self.client_for(&record.site.clone(), Some(&record))?;
        let dest = to
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.default_fetch_dir(&record));
        let mut fetched = fetch::outputs(&client, &record, &dest, reporter, cancel).await?;
        record.outputs = Some(fetched.dir.clone());
        if keep_changes {
            let dir = run::run_dir(&self.paths, id);
            let changes = fetch::changes(
                &client,
                &record,
                &dir.join("changes.qcow2"),
                reporter,
                cancel,
            )
            .await?;
            let suffix = id.rsplit('-').next().unwrap_or(id);
            let mut name = format!("{}-from-{suffix}", record.machine);
            if name.len() > 32 {
                name = format!("run-{suffix}");
            }
            let work_dir = record
                .machine
                .parse()
                .ok()
                .and_then(|n| machine::load(&self.paths, &n).ok())
                .and_then(|m| m.work_dir);
            let imported = self
                .import(&ImportRequest {
                    file: dir.join("bundle.sloop"),
                    name: Some(name.clone()),
                    work_dir,
                    allow_unsigned: false,
                    trust_signer: false,
                })
                .await?;
            let overlay = self
                .paths
                .machine_dir(&imported.machine.name)
                .join(machine::OVERLAY);
            fetch::commit_changes(&changes, &overlay).await?;
            let _ = std::fs::remove_file(&changes);
            record.changed_machine = Some(imported.machine.name.clone());
            fetched.changed_machine = Some(imported.machine.name);
        }
        run::save(&self.paths, &record)?;
        Ok(fetched)
    }
}

/// How long a clean waits for a kill to land (A-REX cleans only jobs that have ended).
const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Waits until the site says `job` has ended (or no longer knows it).
/// Removes the run's key from its relay once the run has ended (or, with `now`, at once, as
/// `clean` does). A relay that cannot be reached leaves the key for a later try, unless `now`:
/// then it is an error naming the line to remove by hand.
async fn release_relay(record: &mut RunRecord, now: bool) -> Result<(), RunError> {
    let Some(relay) = record.relay.as_mut() else {
        return Ok(());
    };
    if relay.removed || !(now || record.ended.is_some()) {
        return Ok(());
    }
    match crate::relay::remove(relay, &crate::relay::user_ssh_dir()).await {
        Ok(()) => {
            relay.removed = true;
            Ok(())
        }
        Err(error) if now => Err(RunError::Invalid(format!(
            "{}; the run's key line (ending in {}) stays in {}@{}:~/.ssh/authorized_keys until it is removed, so the run is kept",
            crate::error_chain(&error),
            relay.key_comment,
            relay.user,
            relay.host
        ))),
        Err(error) => {
            tracing::warn!(run = %record.id, error = %crate::error_chain(&error), "the run's key stays on the relay for now");
            Ok(())
        }
    }
}

async fn wait_until_ended(
    client: &site::arc::ArcClient,
    record: &RunRecord,
    job: &str,
) -> Result<(), CoreError> {
    let deadline = tokio::time::Instant::now() + KILL_WAIT;
    loop {
        let states = client.states().await?;
        let state = states
            .iter()
            .find(|(id, _)| id == job)
            .map(|(_, s)| s.as_str());
        if matches!(
            state,
            None | Some("FINISHED" | "FAILED" | "KILLED" | "WIPED")
        ) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(crate::site::SiteError::Refused {
                site: record.site.clone(),
                reason: format!(
                    "the job did not stop within {} s of the kill (now {}); try `sloop run clean {}` again later",
                    KILL_WAIT.as_secs(),
                    state.unwrap_or("?"),
                    record.id
                ),
            }
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Asks the site to `action` (kill, clean) `job`; a job the site no longer knows is fine.
async fn act_on(
    client: &site::arc::ArcClient,
    record: &RunRecord,
    action: &str,
    job: &str,
) -> Result<(), CoreError> {
    let replies = client.act(action, &[job]).await?;
    match replies.first() {
        Some(reply) if reply.code >= 300 && reply.code != 404 => {
            Err(crate::site::SiteError::Refused {
                site: record.site.clone(),
                reason: reply.reason.clone(),
            }
            .into())
        }
        _ => Ok(()),
    }
}
