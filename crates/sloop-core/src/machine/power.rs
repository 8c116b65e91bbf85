//! Starting and stopping machines.
//!
//! Every start defines the domain again from the manifest (and writes the seed again), so a
//! domain removed or changed behind Sloop's back is put right, a taken SSH port is replaced by a
//! free one, and the work directory's share follows what the host has now.

use std::time::{Duration, Instant};

use super::domain::{DomainSpec, Share, choose_network};
use super::keys::MachineKeys;
use super::manifest::{MachineName, Manifest};
use super::{MachineError, MachineState, MachineSummary, lifecycle, seed};
use crate::config::Config;
use crate::host::{Acceleration, ShareKind, acceleration};
use crate::libvirt::Connection;
use crate::paths::Paths;
use crate::progress::{Meter, ProgressUnit, Reporter};

/// How long an ACPI shutdown may take before the machine is forced off.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// How guests run here: the config's choice, else what the cached probe found (with any
/// fallback a machine that stopped under KVM recorded).
pub async fn acceleration_for(
    paths: &Paths,
    config: &Config,
) -> Result<Acceleration, MachineError> {
    if let Some(chosen) = config.acceleration {
        return Ok(chosen);
    }
    let qemu = crate::programs::qemu_binary().ok_or(MachineError::NoAcceleration)?;
    let probe = acceleration::probe_cached(&qemu, &paths.cache_dir)
        .await
        .map_err(|e| MachineError::Files(paths.cache_dir.clone(), e))?;
    probe.chosen.ok_or(MachineError::NoAcceleration)
}

/// How the work directory is shared on this host and libvirt.
pub async fn share_kind(conn: &Connection) -> Option<ShareKind> {
    crate::host::work_share(conn.uri()).await
}

/// Defines (or redefines) the machine's domain from its manifest, running under `accel` and
/// sharing the work directory as `share` (the kind the seed mounts; see [`share_kind`]).
pub(super) async fn define(
    paths: &Paths,
    conn: &Connection,
    manifest: &Manifest,
    accel: Acceleration,
    share: Option<ShareKind>,
) -> Result<(), MachineError> {
    let dir = paths.machine_dir(manifest.name.as_str());
    let share = match &manifest.work_dir {
        Some(source) => Some((source.clone(), share.ok_or(MachineError::NoShare)?)),
        None => None,
    };
    let version = conn.run(|c| c.lib_version()).await?;
    // On qemu:///system QEMU runs as the user (docs/adr/0001-qemu-runs-as-the-user.md).
    let run_as = conn.uri().contains("/system").then(|| {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    });
    let domain = manifest.domain_name();
    let overlay = dir.join(super::OVERLAY);
    let seed_path = dir.join(super::SEED);
    let console = dir.join(super::CONSOLE);
    let xml = DomainSpec {
        name: &domain,
        machine: manifest.name.as_str(),
        uuid: &manifest.uuid,
        acceleration: accel,
        vcpus: manifest.resources.vcpus,
        memory_mib: manifest.resources.memory_mib,
        overlay: &overlay,
        live_cd: (manifest.layout == super::DiskLayout::LiveCd)
            .then_some(manifest.base.path.as_path()),
        seed: &seed_path,
        share: share.as_ref().map(|(source, kind)| Share {
            source,
            tag: seed::WORK_TAG,
            kind: *kind,
        }),
        network: choose_network(version, manifest.ssh_port),
        console_log: &console,
        run_as,
    }
    .to_xml();
    lifecycle::define(conn, xml).await?;
    Ok(())
}

/// Whether nothing listens on 127.0.0.1:`port`.
fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Starts the machine. With `wait_ssh`, returns once the machine's SSH server has answered with
/// its pinned host key, or fails: at once when the guest stops on its own while booting (with
/// libvirt's reason, QEMU's and the console's last words), else after `wait_ssh`. A guest that
/// stops under KVM (or a KVM domain QEMU cannot start) makes this host fall back to TCG, recorded
/// for `sloop doctor`, and the start is tried once more. Progress goes to `reporter` as
/// `start:<name>`.
pub async fn start(
    paths: &Paths,
    config: &Config,
    conn: &Connection,
    name: &str,
    wait_ssh: Option<Duration>,
    reporter: &Reporter,
) -> Result<MachineSummary, MachineError> {
    let name: MachineName = name.parse()?;
    let mut manifest = super::load(paths, &name)?;
    let task = format!("start:{name}");
    let mut meter = Meter::new(&task, "preparing", Some(3), ProgressUnit::Steps);
    meter.update(reporter, 0, true);
    if !manifest.base.path.is_file() {
        return Err(MachineError::BaseMissing {
            machine: name.to_string(),
            path: manifest.base.path.clone(),
        });
    }
    let accel = acceleration_for(paths, config).await?;
    let booted = boot(
        paths,
        conn,
        &mut manifest,
        accel,
        wait_ssh,
        &mut meter,
        reporter,
    )
    .await;
    match booted {
        Err(failure) if accel == Acceleration::Kvm && config.acceleration.is_none() => {
            let Some(reason) = failure.kvm_failure() else {
                return Err(failure);
            };
            let qemu = crate::programs::qemu_binary().ok_or(MachineError::NoAcceleration)?;
            acceleration::record_fallback(
                &qemu,
                &paths.cache_dir,
                name.as_str(),
                &reason,
                time::OffsetDateTime::now_utc(),
            )
            .await
            .map_err(|_| failure)?;
            lifecycle::force_off(conn, &manifest.domain_name()).await?;
            tracing::warn!(machine = %name, "starting again under TCG");
            boot(
                paths,
                conn,
                &mut manifest,
                Acceleration::Tcg,
                wait_ssh,
                &mut meter,
                reporter,
            )
            .await?;
        }
        other => other?,
    }
    meter.update(reporter, 3, true);
    super::summary(paths, config, conn, &manifest).await
}

/// Starts the domain under `accel` unless it runs already, and waits for SSH when asked.
async fn boot(
    paths: &Paths,
    conn: &Connection,
    manifest: &mut Manifest,
    accel: Acceleration,
    wait_ssh: Option<Duration>,
    meter: &mut Meter,
    reporter: &Reporter,
) -> Result<(), MachineError> {
    let name = manifest.name.clone();
    let dir = paths.machine_dir(name.as_str());
    let domain = manifest.domain_name();
    if super::domain_state(conn, &domain).await? != MachineState::Running {
        if !port_free(manifest.ssh_port) {
            let port = super::free_local_port().map_err(|e| MachineError::Files(dir.clone(), e))?;
            tracing::info!(machine = %name, old = manifest.ssh_port, new = port, "SSH port taken; moving to a free one");
            manifest.ssh_port = port;
            manifest.save(&dir)?;
        }
        let keys = MachineKeys::load(&dir.join("ssh"))?;
        let share = share_kind(conn).await;
        super::create::seed_for(manifest, &keys, share)?
            .write_iso(&dir.join(super::SEED))
            .await?;
        define(paths, conn, manifest, accel, share).await?;
        meter.stage("starting");
        meter.update(reporter, 1, true);
        lifecycle::start(conn, &domain)
            .await
            .map_err(|source| MachineError::StartRefused {
                machine: name.to_string(),
                acceleration: accel,
                qemu_log: qemu_log_line(conn, &domain),
                source: Box::new(source),
            })?;
        tracing::info!(machine = %name, port = manifest.ssh_port, ?accel, "machine started");
    }
    if let Some(within) = wait_ssh {
        meter.stage("booting");
        meter.update(reporter, 2, true);
        let started = Instant::now();
        wait_for_ssh(paths, conn, manifest, accel, within).await?;
        tracing::info!(machine = %name, seconds = started.elapsed().as_secs_f64(), "SSH answers");
    }
    Ok(())
}

/// How often the domain's state is looked at while waiting for SSH.
const STATE_POLL: Duration = Duration::from_millis(500);

/// Logs in once with the pinned host key, then leaves; meanwhile watches the domain, so a guest
/// that pauses, crashes or powers off while booting fails the wait at once, with the reason.
async fn wait_for_ssh(
    paths: &Paths,
    conn: &Connection,
    manifest: &Manifest,
    accel: Acceleration,
    within: Duration,
) -> Result<(), MachineError> {
    let domain = manifest.domain_name();
    let watch = async {
        loop {
            tokio::time::sleep(STATE_POLL).await;
            match super::domain_status(conn, &domain).await {
                Ok(Some(status)) if status.ends_boot() => return status,
                Ok(None) => return super::DomainStatus::undefined(),
                // A libvirt hiccup is no verdict on the guest; the SSH wait still bounds this.
                _ => {}
            }
        }
    };
    tokio::select! {
        session = connect(paths, manifest, within) => match session {
            Ok(session) => {
                let _ = session.close().await;
                Ok(())
            }
            Err(MachineError::Ssh(source @ crate::ssh::SshError::Timeout { .. })) => {
                Err(MachineError::NoLogin {
                    machine: manifest.name.to_string(),
                    console: console_line(paths, manifest),
                    source: Box::new(source),
                })
            }
            Err(other) => Err(other),
        },
        status = watch => Err(MachineError::GuestStopped {
            machine: manifest.name.to_string(),
            acceleration: accel,
            qemu_log: qemu_log_line(conn, &domain),
            console: console_line(paths, manifest),
            status: Box::new(status),
        }),
    }
}

/// The last line of the machine's console log, or a note that it is empty.
fn console_line(paths: &Paths, manifest: &Manifest) -> String {
    let text = super::console_tail(paths, manifest.name.as_str(), 4096).unwrap_or_default();
    last_line(&text, |_| true)
        .map(|l| format!("{l:?}"))
        .unwrap_or_else(|| "(empty: the guest printed nothing)".to_string())
}

/// What QEMU last said about the domain in libvirt's log for it: its last error line, else its
/// last line. `None` when the log cannot be read (another user's libvirt, say).
fn qemu_log_line(conn: &Connection, domain: &str) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let path = if conn.uri().contains("/system") {
        std::path::PathBuf::from("/var/log/libvirt/qemu")
    } else {
        directories::BaseDirs::new()?
            .cache_dir()
            .join("libvirt/qemu/log")
    }
    .join(format!("{domain}.log"));
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(8192))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    // libvirt starts each QEMU run with its command line; only this run's lines count.
    let run = text.rsplit("LC_ALL=").next().unwrap_or(&text);
    let run = run.split_once('\n').map_or("", |(_, rest)| rest);
    last_line(run, |l| {
        let l = l.to_ascii_lowercase();
        l.contains("error") || l.contains("kvm")
    })
    .or_else(|| last_line(run, |l| !libvirts_own(l)))
    .map(str::to_string)
}

/// Whether a QEMU log line is libvirt's note ("2026-12-05 17:19:31.793+0000: Domain id=11 is
/// tainted: custom-argv", "char device redirected to ...") rather than QEMU's own words.
fn libvirts_own(line: &str) -> bool {
    let b = line.as_bytes();
    let stamped = b.len() > 11 && b[4] == b'-' && b[7] == b'-' && b[10] == b' ';
    stamped || line.starts_with("char device redirected")
}

/// The last non-empty line of `text` that `keep` accepts.
fn last_line(text: &str, keep: impl Fn(&str) -> bool) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && keep(l))
}

/// An SSH session into the running machine, accepting only its pinned host key.
pub async fn connect(
    paths: &Paths,
    manifest: &Manifest,
    within: Duration,
) -> Result<crate::ssh::Session, MachineError> {
    let keys = MachineKeys::load(&paths.machine_dir(manifest.name.as_str()).join("ssh"))?;
    let endpoint = crate::ssh::SshEndpoint::local(manifest.ssh_port, &manifest.user);
    let policy = crate::ssh::ConnectPolicy::local_vm(within);
    Ok(crate::ssh::connect(&endpoint, &keys.client, keys.host.public_key(), policy).await?)
}

/// Asks the machine to shut down (ACPI) and forces it off after `grace`. A stopped machine is
/// left alone.
pub async fn stop(
    paths: &Paths,
    config: &Config,
    conn: &Connection,
    name: &str,
    grace: Duration,
) -> Result<MachineSummary, MachineError> {
    let name: MachineName = name.parse()?;
    let manifest = super::load(paths, &name)?;
    let domain = manifest.domain_name();
    let state = super::domain_state(conn, &domain).await?;
    if !matches!(state, MachineState::Stopped | MachineState::Undefined) {
        let clean = lifecycle::shutdown(conn, &domain, grace).await?;
        tracing::info!(machine = %name, clean, "machine stopped");
    }
    super::summary(paths, config, conn, &manifest).await
}

/// Stops the machine at once, like pulling the power cord.
pub async fn force_off(
    paths: &Paths,
    config: &Config,
    conn: &Connection,
    name: &str,
) -> Result<MachineSummary, MachineError> {
    let name: MachineName = name.parse()?;
    let manifest = super::load(paths, &name)?;
    let domain = manifest.domain_name();
    // Not defined: it is off already.
    if lifecycle::is_defined(conn, &domain).await? {
        lifecycle::force_off(conn, &domain).await?;
    }
    tracing::info!(machine = %name, "machine forced off");
    super::summary(paths, config, conn, &manifest).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirts_notes_are_not_taken_for_qemus_words() {
        assert!(libvirts_own(
            "2026-12-05 17:19:31.793+0000: Domain id=11 is tainted: custom-argv"
        ));
        assert!(libvirts_own(
            "char device redirected to /dev/pts/0 (label charserial0)"
        ));
        assert!(!libvirts_own(
            "2026-12-05T17:19:31.793Z qemu-system-x86_64: error: failed to set MSR 0x10a"
        ));
        assert!(!libvirts_own("KVM internal error. Suberror: 1"));
    }
}
