//! Submitting a machine to a grid site: its bundle (only the changes travel), a per-run seed
//! with fresh SSH keys, the delegated proxy, the job description naming the base's URL for the
//! CE's cache, then the uploads. The record is written at each step: a submit that is killed
//! half-way is listed and can be cleaned.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{RunError, RunRecord, RunResources, guest, xrsl};
use crate::bundle::export::ExportRequest;
use crate::bundle::{archive, sign};
use crate::config::Config;
use crate::libvirt::Connection;
use crate::machine::keys::{MachineKeys, public_openssh};
use crate::machine::seed::{self, Seed};
use crate::machine::{self, MachineName};
use crate::paths::Paths;
use crate::progress::{Meter, ProgressUnit, Reporter};
use crate::relay::RelayAddr;
use crate::site::{self, SiteError, arc::ArcClient};
use crate::types::ShareKind;

/// The VM job's executable, uploaded with every job (docs/site-admins.md).
pub const JOB_SCRIPT: &str = include_str!("../../../../assets/site/sloop-vm-job.sh");
/// The runtime environment site admins enable (`sloop site rte` prints it).
pub const RTE_SCRIPT: &str = include_str!("../../../../assets/site/ENV/SLOOP-VM");

/// Wall time asked for when the user says nothing: an hour.
pub const DEFAULT_WALLTIME_SECS: u64 = 3600;
/// Most inputs a run takes (each is one upload and one line of the job description).
const MAX_INPUTS: usize = 1000;

/// What to run where.
#[derive(Debug, Clone, Default)]
pub struct SubmitRequest {
    pub machine: String,
    pub site: String,
    /// `None`: an interactive run that stays up for the debug shell.
    pub command: Option<String>,
    /// Files or folders copied to /analysis.
    pub inputs: Vec<PathBuf>,
    pub walltime_secs: Option<u64>,
    pub cpus: Option<u32>,
    pub memory_mib: Option<u32>,
    pub keep_changes: bool,
    /// Submit as this earlier run, which must no longer exist (a resume keeps the run's id).
    pub as_run: Option<String>,
    /// An interactive run's SSH relay, `USER@HOST[:PORT]` (see [`crate::relay`]).
    pub relay: Option<String>,
}

/// The task a submit of `machine` runs as.
pub fn task_name(machine: &str) -> String {
    format!("submit:{machine}")
}

/// One file to upload: its session name and where it comes from.
#[derive(Debug, Clone)]
struct Upload {
    name: String,
    source: PathBuf,
    offset: u64,
    len: u64,
}

/// The inputs' session names (`analysis/<name>`, folders walked), refusing links and clashes.
fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<Upload>, RunError> {
    let mut out: Vec<Upload> = Vec::new();
    fn walk(path: &Path, name: String, out: &mut Vec<Upload>) -> Result<(), RunError> {
        let bad = |reason: &str| RunError::Input {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let metadata = std::fs::symlink_metadata(path).map_err(|e| {
            bad(&if e.kind() == std::io::ErrorKind::NotFound {
                "no such file".to_string()
            } else {
                e.kind().to_string()
            })
        })?;
        if metadata.is_file() {
            out.push(Upload {
                name,
                source: path.to_path_buf(),
                offset: 0,
                len: metadata.len(),
            });
        } else if metadata.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| bad(&e.kind().to_string()))?
                .flatten()
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let Some(child) = entry.file_name().to_str().map(str::to_string) else {
                    return Err(bad("holds a name that is not UTF-8"));
                };
                walk(&entry.path(), format!("{name}/{child}"), out)?;
            }
        } else {
            return Err(bad(
                "is a link or a special file; give regular files or folders",
            ));
        }
        if out.len() > MAX_INPUTS {
            return Err(bad(&format!(
                "more than {MAX_INPUTS} files; pack them into an archive"
            )));
        }
        Ok(())
    }
    for input in inputs {
        let base = input
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('.') || n.len() > 2)
            .ok_or_else(|| RunError::Input {
                path: input.clone(),
                reason: "has no usable file name".into(),
            })?
            .to_string();
        if base == "output" || base == ".sloop" {
            return Err(RunError::Input {
                path: input.clone(),
                reason: format!("is called {base:?}, which the run writes itself; rename it"),
            });
        }
        if out
            .iter()
            .any(|u| u.name.split('/').nth(1) == Some(base.as_str()))
        {
            return Err(RunError::DuplicateInput(base));
        }
        walk(input, format!("{}/{base}", xrsl::ANALYSIS), &mut out)?;
    }
    Ok(out)
}

/// A fresh run id for `machine`: `<machine>-<8 hex>`.
fn new_id(paths: &Paths, machine: &str) -> String {
    loop {
        let id = format!("{machine}-{:08x}", rand::random::<u32>());
        if !super::run_dir(paths, &id).exists() {
            return id;
        }
    }
}

/// Is `location` an address a site can fetch: http(s), and not a name that never resolves (under
/// `.invalid`, RFC 6761, as the demo list's own addresses are)?
fn fetchable(location: &str) -> bool {
    url::Url::parse(location).is_ok_and(|url| {
        matches!(url.scheme(), "https" | "http")
            && url.host_str().is_some_and(|host| {
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                host != "invalid" && !host.ends_with(".invalid")
            })
    })
}

/// The address a site fetches the base with SHA-512 `sha512` from: where the store's copy was
/// read, when that was http(s); else the `hv:uri` of the same bytes in a certified image of a
/// current list (a base pulled from a mirror or a share is still those bytes, and the VM job
/// checks them). Where the store's copy came from when no such address is known.
fn fetchable_base(
    paths: &Paths,
    config: &Config,
    sha512: &str,
    now: OffsetDateTime,
) -> Result<String, Option<String>> {
    let pulled = crate::image::Store::new(paths)
        .provenance(sha512)
        .map(|p| p.location);
    if let Some(location) = pulled.as_ref().filter(|l| fetchable(l)) {
        return Ok(location.clone());
    }
    let catalogs = crate::catalog::list(paths, config, now).unwrap_or_default();
    catalogs
        .iter()
        .flat_map(|c| c.images.iter())
        .find(|i| i.certified && i.sha512 == sha512 && fetchable(&i.url))
        .map(|i| i.url.clone())
        .ok_or(pulled)
}

/// Submits `request` with the proxy at `proxy`; the run's record.
#[allow(clippy::too_many_arguments)]
pub async fn submit(
    paths: &Paths,
    config: &Config,
    conn: &Connection,
    request: &SubmitRequest,
    proxy: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
    now: OffsetDateTime,
) -> Result<RunRecord, RunError> {
    let name: MachineName = request
        .machine
        .parse()
        .map_err(machine::MachineError::from)?;
    let manifest = machine::load(paths, &name)?;
    let base_layout = site_layout(paths, &manifest)?;
    if let Some(command) = &request.command
        && command.trim().is_empty()
    {
        return Err(RunError::Invalid(
            "the command is empty; give one, or none for an interactive run".into(),
        ));
    }
    let site = site::get(paths, &request.site)?;
    // An interactive run goes through the relay asked for, else the site's own.
    let relay = request.relay.clone().or_else(|| {
        request
            .command
            .is_none()
            .then(|| site.relay.clone())
            .flatten()
    });
    let relay_addr = relay.as_deref().map(str::parse::<RelayAddr>).transpose()?;
    if relay_addr.is_some() && request.command.is_some() {
        return Err(RunError::Invalid(
            "a relay is for interactive runs (a shell); a run with a command needs none".into(),
        ));
    }
    let inputs = collect_inputs(&request.inputs)?;
    let resources = RunResources {
        cpus: request.cpus.unwrap_or(manifest.resources.vcpus).max(1),
        memory_mib: request.memory_mib.unwrap_or(manifest.resources.memory_mib),
        walltime_secs: request.walltime_secs.unwrap_or(DEFAULT_WALLTIME_SECS),
    };
    if resources.walltime_secs < 120 {
        return Err(RunError::Invalid(
            "a wall time under 2 minutes leaves no time to boot; ask for more".into(),
        ));
    }
    if !(128..=1 << 20).contains(&resources.memory_mib) {
        return Err(RunError::Invalid(format!(
            "{} MiB of memory is not possible; give between 128 MiB and 1 TiB",
            resources.memory_mib
        )));
    }
    // The proxy and the site first: an expired proxy, a site that is down, refuses the user or
    // has no VM runtime environment fail before anything is made or uploaded.
    let anchors = &config.ca_dir();
    let (client, _identity) = site::client(&site, proxy, anchors, now)?;
    let info = site::info(&site, proxy, anchors, now).await?;
    if !info.offers_vm_jobs {
        return Err(SiteError::NoVmRuntime(site.name.to_string()).into());
    }
    let location = fetchable_base(paths, config, &manifest.base.sha512, now).map_err(|pulled| {
        RunError::BaseNotFetchable {
            machine: name.to_string(),
            location: pulled.unwrap_or_else(|| "none recorded".into()),
        }
    })?;

    let id = match &request.as_run {
        Some(id) => id.clone(),
        None => new_id(paths, name.as_str()),
    };
    let dir = super::run_dir(paths, &id);
    if request.as_run.is_some() && dir.exists() {
        return Err(RunError::Invalid(format!(
            "run {id} still exists; clean it before submitting as it"
        )));
    }
    let keys = MachineKeys::generate(&id)?;
    let mut record = RunRecord {
        id: id.clone(),
        machine: name.to_string(),
        user: manifest.user.clone(),
        site: site.name.to_string(),
        site_url: site.url.clone(),
        job_id: None,
        delegation_id: None,
        command: request.command.clone(),
        inputs: inputs
            .iter()
            .map(|u| u.name.trim_start_matches("analysis/").to_string())
            .collect(),
        input_paths: request
            .inputs
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect(),
        keep_changes: request.keep_changes,
        resources,
        base_sha512: manifest.base.sha512.clone(),
        base_url: location,
        overlay_sha512: String::new(),
        host_key: public_openssh(keys.host.public_key()),
        created: crate::time_util::rfc3339(now),
        submitted: None,
        state: None,
        state_at: None,
        ended: None,
        exit_code: None,
        reason: None,
        accel: None,
        outputs: None,
        changed_machine: None,
        proxy_until: None,
        endpoint: None,
        relay: None,
    };
    super::save(paths, &record)?;
    // Held until this function returns: a resume or clean meanwhile (another Sloop) refuses.
    let _lock = super::lock_submit(paths, &id)?;
    tracing::info!(run = %id, site = %site.name, "submitting");

    let task = task_name(name.as_str());
    let prepared = prepare(
        paths, conn, &dir, &record, &keys, &manifest, proxy, reporter, cancel, now,
    )
    .await;
    let (bundle_file, overlay_span, overlay_sha512) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            // Nothing is at the site yet: nothing of the run stays.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(error);
        }
    };
    record.overlay_sha512 = overlay_sha512;
    super::save(paths, &record)?;

    // The relay takes the run's own key (checked to allow one reverse forward and nothing else)
    // before anything is at the site.
    let relay_key = match &relay_addr {
        None => None,
        Some(addr) => {
            let installed = relay_setup(&dir, &mut record, addr).await;
            match installed {
                Ok(key_file) => {
                    super::save(paths, &record)?;
                    Some(key_file)
                }
                Err(error) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(error);
                }
            }
        }
    };

    let at_site = async {
        let (delegation, csr) = client.new_delegation().await?;
        let pem = crate::proxy::make::delegate(proxy, &csr, OffsetDateTime::now_utc())
            .map_err(SiteError::from)?;
        client.put_delegation(&delegation, pem).await?;
        record.delegation_id = Some(delegation.clone());
        let input_names: Vec<String> = inputs.iter().map(|u| u.name.clone()).collect();
        let description = xrsl::describe(&xrsl::JobSpec {
            name: &format!("sloop-{id}"),
            base_url: &record.base_url,
            base_sha512: &record.base_sha512,
            base_layout: &base_layout,
            overlay_sha512: &record.overlay_sha512,
            inputs: &input_names,
            cpus: record.resources.cpus,
            memory_mib: record.resources.memory_mib,
            walltime_secs: record.resources.walltime_secs,
            interactive: record.command.is_none(),
            keep_changes: record.keep_changes,
            relay: relay_key.is_some(),
            delegation: &delegation,
        });
        let job = client.create_job(&description).await?;
        record.job_id = Some(job.clone());
        super::save(paths, &record)?;
        tracing::info!(run = %id, job = %job, "job created; uploading");

        let script = dir.join(xrsl::JOB_SCRIPT_NAME);
        crate::fsutil::write_atomic(&script, JOB_SCRIPT.as_bytes(), 0o644)
            .map_err(super::write_error(&script))?;
        let seed_file = dir.join(xrsl::SEED);
        let mut uploads = vec![
            Upload {
                name: xrsl::JOB_SCRIPT_NAME.into(),
                len: JOB_SCRIPT.len() as u64,
                source: script,
                offset: 0,
            },
            Upload {
                name: xrsl::OVERLAY.into(),
                source: bundle_file.clone(),
                offset: overlay_span.offset,
                len: overlay_span.len,
            },
            Upload {
                name: xrsl::SEED.into(),
                len: std::fs::metadata(&seed_file).map(|m| m.len()).unwrap_or(0),
                source: seed_file.clone(),
                offset: 0,
            },
        ];
        if let Some(key_file) = &relay_key {
            for (name, source) in [
                (xrsl::RELAY_CONF, dir.join(xrsl::RELAY_CONF)),
                (xrsl::RELAY_KNOWN_HOSTS, dir.join(xrsl::RELAY_KNOWN_HOSTS)),
                (xrsl::RELAY_KEY, key_file.clone()),
            ] {
                uploads.push(Upload {
                    name: name.into(),
                    len: std::fs::metadata(&source).map(|m| m.len()).unwrap_or(0),
                    source,
                    offset: 0,
                });
            }
        }
        uploads.extend(inputs.iter().cloned());
        upload_all(&client, &job, &uploads, &task, reporter, cancel).await?;
        Ok::<_, RunError>(())
    }
    .await;
    // The seed holds the run's private host key, and the relay key file the run's key for the
    // relay: they leave this machine only for the site.
    let _ = std::fs::remove_file(dir.join(xrsl::SEED));
    if let Some(key_file) = &relay_key {
        let _ = std::fs::remove_file(key_file);
    }
    match at_site {
        Ok(()) => {
            let now = OffsetDateTime::now_utc();
            record.submitted = Some(crate::time_util::rfc3339(now));
            record.state = Some("ACCEPTED".into());
            record.state_at = record.submitted.clone();
            super::save(paths, &record)?;
            tracing::info!(run = %id, "submitted");
            Ok(record)
        }
        Err(error) => {
            // Half a job at the site: take it back when the site lets us; else the record stays
            // (listed as unfinished) for `sloop run resume` or `sloop run clean`.
            let taken_back = match &record.job_id {
                None => true,
                Some(job) => take_back(&client, job).await,
            };
            if taken_back {
                if let Some(relay) = &record.relay
                    && let Err(e) = crate::relay::remove(relay, &crate::relay::user_ssh_dir()).await
                {
                    tracing::warn!(run = %id, error = %crate::error_chain(&e), "the run's key stays on the relay");
                }
                let _ = std::fs::remove_dir_all(&dir);
            } else {
                record.reason = Some(format!(
                    "the submit stopped half-way ({}); submit it again with `sloop run resume {id}` or remove it with `sloop run clean {id}`",
                    crate::error_chain(&error)
                ));
                let _ = super::save(paths, &record);
            }
            Err(error)
        }
    }
}

/// Makes the run's relay key, installs it on the relay (see [`crate::relay::install`]), notes
/// the relay in `record` and writes the relay files the job gets; the private key's file.
async fn relay_setup(
    dir: &Path,
    record: &mut RunRecord,
    addr: &RelayAddr,
) -> Result<PathBuf, RunError> {
    let mut key =
        russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
            .map_err(crate::machine::keys::KeyError::Generate)?;
    let comment = format!("sloop-run:{}", record.id);
    key.set_comment(comment.as_str());
    let relay = crate::relay::install(addr, &crate::relay::user_ssh_dir(), &key, &comment).await?;
    let ssh = dir.join("ssh");
    crate::paths::ensure_private_dir(&ssh).map_err(super::write_error(&ssh))?;
    let key_file = ssh.join("relay");
    let private = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(crate::machine::keys::KeyError::Generate)?;
    crate::fsutil::write_atomic(&key_file, private.as_bytes(), 0o600)
        .map_err(super::write_error(&key_file))?;
    let conf = format!(
        "user={}\nhost={}\nport={}\n",
        relay.user, relay.host, relay.port
    );
    crate::fsutil::write_atomic(&dir.join(xrsl::RELAY_CONF), conf.as_bytes(), 0o644)
        .map_err(super::write_error(dir))?;
    crate::fsutil::write_atomic(
        &dir.join(xrsl::RELAY_KNOWN_HOSTS),
        relay.known_hosts_line().as_bytes(),
        0o644,
    )
    .map_err(super::write_error(dir))?;
    record.relay = Some(relay);
    Ok(key_file)
}

/// Kills and cleans a half-submitted job; true when the site took both.
async fn take_back(client: &ArcClient, job: &str) -> bool {
    let killed = client.act("kill", &[job]).await;
    let cleaned = client.act("clean", &[job]).await;
    matches!((killed, cleaned), (Ok(_), Ok(_)))
}

/// How the site reads the machine's base: from the certified file as the runnable base was made
/// here, laid out as the machine's manifest (and so its bundle) says; the two must agree.
fn site_layout(
    paths: &Paths,
    manifest: &machine::manifest::Manifest,
) -> Result<xrsl::BaseLayout, RunError> {
    let derivation = crate::image::Store::new(paths).derivation(&manifest.base.sha512);
    match (derivation, manifest.layout) {
        (Some(d), layout) if d.layout() == layout => Ok(xrsl::BaseLayout::of(&d)),
        // A machine made before runnable bases stands on a qcow2 as listed.
        (None, machine::DiskLayout::Overlay) => Ok(xrsl::BaseLayout::qcow2()),
        (_, layout) => Err(RunError::Invalid(format!(
            "machine {}'s disk layout ({}) does not match its base image's runnable base here; make the base again with `sloop image pull {}`",
            manifest.name,
            layout.as_str(),
            &manifest.base.sha512[..16]
        ))),
    }
}

/// The run's bundle (signed with the proxy) and seed, in the run's folder.
#[allow(clippy::too_many_arguments)]
async fn prepare(
    paths: &Paths,
    conn: &Connection,
    dir: &Path,
    record: &RunRecord,
    keys: &MachineKeys,
    manifest: &machine::manifest::Manifest,
    proxy: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
    now: OffsetDateTime,
) -> Result<(PathBuf, archive::Span, String), RunError> {
    let signer = {
        let proxy = proxy.to_path_buf();
        tokio::task::spawn_blocking(move || {
            sign::identity(
                &proxy,
                &crate::proxy::UserCredentials::from_env(),
                None,
                now,
            )
        })
        .await
        .map_err(|e| RunError::Invalid(e.to_string()))?
        .map_err(crate::bundle::BundleError::from)?
    };
    let bundle_file = dir.join("bundle.sloop");
    let exported = crate::bundle::export::export(
        paths,
        conn,
        &ExportRequest {
            machine: record.machine.clone(),
            output: bundle_file.clone(),
            note: format!("grid run {} at site {}", record.id, record.site),
        },
        Some(&signer),
        reporter,
        cancel,
        now,
    )
    .await?;
    let members = archive::scan(&bundle_file)
        .map_err(|e| RunError::Invalid(format!("the run's own bundle cannot be read: {e}")))?;

    let script = guest::script(
        &manifest.user,
        machine::create::USER_UID,
        record.command.as_deref(),
    );
    let seed = Seed {
        instance_id: format!("sloop-run-{}", record.id),
        hostname: record.machine.clone(),
        user: manifest.user.clone(),
        uid: machine::create::USER_UID,
        authorized_keys: vec![public_openssh(keys.client.public_key())],
        host_key_private: keys.host_private_openssh()?,
        host_key_public: record.host_key.clone(),
        write_files: Vec::new(),
        bootcmd: vec![
            seed::mount_secrets(machine::create::USER_UID),
            seed::mount_work_dir(ShareKind::NineP, machine::create::USER_UID),
        ],
        runcmd: vec![guest::runcmd(&script)],
    };
    seed.write_iso(&dir.join(xrsl::SEED)).await?;
    // The client key stays here for the run's shell; the host key only travels in the seed.
    let ssh = dir.join("ssh");
    crate::paths::ensure_private_dir(&ssh).map_err(super::write_error(&ssh))?;
    let client = keys
        .client
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(crate::machine::keys::KeyError::Generate)?;
    crate::fsutil::write_atomic(&ssh.join("client"), client.as_bytes(), 0o600)
        .map_err(super::write_error(&ssh))?;
    Ok((
        bundle_file,
        members.overlay,
        exported.manifest.overlay.sha512,
    ))
}

/// Uploads `uploads` to the job's session folder, one after the other, with progress.
async fn upload_all(
    client: &ArcClient,
    job: &str,
    uploads: &[Upload],
    task: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let total: u64 = uploads.iter().map(|u| u.len).sum();
    let meter = Arc::new(Mutex::new(Meter::new(
        task,
        "uploading to the site",
        Some(total),
        ProgressUnit::Bytes,
    )));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Ok(mut meter) = meter.lock() {
        meter.update(reporter, 0, true);
    }
    for upload in uploads {
        let mut file =
            tokio::fs::File::open(&upload.source)
                .await
                .map_err(|e| RunError::Input {
                    path: upload.source.clone(),
                    reason: e.kind().to_string(),
                })?;
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        file.seek(std::io::SeekFrom::Start(upload.offset))
            .await
            .map_err(|e| RunError::Input {
                path: upload.source.clone(),
                reason: e.kind().to_string(),
            })?;
        let (meter, done, reporter, token) = (
            meter.clone(),
            done.clone(),
            reporter.clone(),
            cancel.clone(),
        );
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(upload.len), 256 * 1024)
            .map(move |chunk| {
                if token.is_cancelled() {
                    return Err(std::io::Error::other("cancelled"));
                }
                if let Ok(bytes) = &chunk {
                    let now = done
                        .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed)
                        + bytes.len() as u64;
                    if let Ok(mut meter) = meter.lock() {
                        meter.update(&reporter, now, false);
                    }
                }
                chunk
            });
        tokio::select! {
            result = client.put_file(job, &upload.name, reqwest::Body::wrap_stream(stream)) => result?,
            () = cancel.cancelled() => return Err(RunError::Cancelled),
        }
    }
    if let Ok(mut meter) = meter.lock() {
        meter.update(reporter, total, true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_site_fetches_only_http_addresses_that_can_resolve() {
        assert!(super::fetchable("https://images.example.org/a.qcow2"));
        assert!(super::fetchable("http://localhost:8080/a.qcow2"));
        assert!(!super::fetchable(
            "https://sloop.invalid/demo/sloop-demo.qcow2"
        ));
        assert!(!super::fetchable("https://SLOOP.INVALID./a"));
        assert!(!super::fetchable("file:///srv/images/a.qcow2"));
        assert!(!super::fetchable(
            "/home/ada/.local/share/sloop/demo/a.qcow2"
        ));
    }
}
