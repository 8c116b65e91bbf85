//! The user's personal analysis machines: a qcow2 overlay on a read-only certified base, a
//! cloud-init NoCloud seed, per-machine SSH keys, a work directory share, resources.
//!
//! libvirt holds the runtime truth (is it running?); the manifest in the machine's folder holds
//! the rest, and the two are joined whenever machines are listed.

pub mod create;
pub mod disk;
pub mod domain;
pub mod keys;
pub mod lifecycle;
pub mod manifest;
pub mod power;
pub mod seed;

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;
use ts_rs::TS;

pub use create::{CreateRequest, create};
pub use manifest::{DiskLayout, MachineName, Manifest};
pub use power::{force_off, start, stop};

use crate::config::Config;
use crate::libvirt::{Connection, LibvirtError, NO_DOMAIN};
use crate::paths::Paths;
use crate::types::Acceleration;

/// Files in a machine's folder.
pub const OVERLAY: &str = "overlay.qcow2";
pub const SEED: &str = "seed.iso";
pub const CONSOLE: &str = "console.log";

/// What a machine is doing, as libvirt reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum MachineState {
    Running,
    /// Defined and powered off.
    Stopped,
    Paused,
    /// ACPI shutdown under way.
    ShuttingDown,
    Crashed,
    /// Sloop has the machine's files but libvirt does not know the domain (removed behind
    /// Sloop's back); starting it defines it again.
    Undefined,
    Unknown,
}

impl MachineState {
    fn from_libvirt(state: virt::domain::DomainStateEnum) -> Self {
        use virt::domain::DomainState;
        use virt::enumutil::Enum;
        match state {
            Enum::Known(DomainState::Running | DomainState::Blocked) => Self::Running,
            Enum::Known(DomainState::Shutoff) => Self::Stopped,
            Enum::Known(DomainState::Paused | DomainState::PMSuspended) => Self::Paused,
            Enum::Known(DomainState::Shutdown) => Self::ShuttingDown,
            Enum::Known(DomainState::Crashed) => Self::Crashed,
            _ => Self::Unknown,
        }
    }
}

/// One machine, as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct MachineSummary {
    pub name: String,
    pub state: MachineState,
    /// The base image's title.
    pub image: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    /// SSH on 127.0.0.1 at this port while running.
    pub ssh_port: u16,
    /// The host folder shared at /analysis, if any.
    pub work_dir: Option<String>,
    /// Whether the base image is still certified by a subscribed, verified list; a machine on
    /// an image that is no longer certified keeps working, with a warning.
    pub image_certified: bool,
    /// Whether the user's grid proxy follows the machine (`sloop proxy attach`).
    pub proxy_attached: bool,
    /// How its disks are laid out: an overlay on its base, or booted from an ISO.
    pub layout: DiskLayout,
}

/// A machine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("cannot read the machines folder")]
    Folder(#[source] std::io::Error),
    #[error(transparent)]
    Name(#[from] manifest::InvalidName),
    #[error("no machine named {0:?}; `sloop machine list` shows your machines")]
    NotFound(String),
    #[error("a machine named {0:?} exists already; choose another name")]
    Exists(String),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(
        "image {title} is not certified ({reason}); machines are made only from certified images"
    )]
    NotCertified { title: String, reason: String },
    #[error("image {title} is not downloaded yet; pull it first: sloop image pull {identifier}")]
    NotDownloaded { title: String, identifier: String },
    #[error("work directory {0}: {1}")]
    WorkDir(PathBuf, String),
    #[error("resources: {0}")]
    Resources(String),
    #[error("machine files at {0}")]
    Files(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error("QEMU cannot run a guest on this host; `sloop doctor` says what is missing")]
    NoAcceleration,
    #[error(
        "this host cannot share a work directory (neither virtiofs nor 9p); `sloop doctor` says how to fix it"
    )]
    NoShare,
    #[error(
        "libvirt already has a domain {0} that this Sloop did not make (another Sloop home or user); choose another name"
    )]
    DomainTaken(String),
    #[error(
        "machine {machine}'s base image {path} is missing; pull the image again (sloop image pull)"
    )]
    BaseMissing { machine: String, path: PathBuf },
    #[error(
        "machine {machine} could not start under {}{}",
        acceleration.label(),
        qemu_log.as_ref().map(|l| format!(" (QEMU said: {l})")).unwrap_or_default()
    )]
    StartRefused {
        machine: String,
        acceleration: Acceleration,
        qemu_log: Option<String>,
        #[source]
        source: Box<LibvirtError>,
    },
    #[error(
        "machine {machine} stopped while booting under {}: libvirt says {status}{}; its console's last line: {console}",
        acceleration.label(),
        qemu_log.as_ref().map(|l| format!(", QEMU said: {l}")).unwrap_or_default()
    )]
    GuestStopped {
        machine: String,
        acceleration: Acceleration,
        status: Box<DomainStatus>,
        qemu_log: Option<String>,
        console: String,
    },
    #[error("machine {machine} did not reach its SSH login; its console's last line: {console}")]
    NoLogin {
        machine: String,
        console: String,
        #[source]
        source: Box<crate::ssh::SshError>,
    },
}

impl MachineError {
    /// Why this failure blames KVM, when it does: a guest that stopped on its own, or a domain
    /// QEMU could not start for a reason that names KVM. The caller knows the acceleration was
    /// KVM; a user's pause or a power-off is not KVM's doing.
    pub fn kvm_failure(&self) -> Option<String> {
        match self {
            Self::GuestStopped {
                status, qemu_log, ..
            } if status.on_its_own => Some(match qemu_log {
                Some(line) => format!("{status}: {line}"),
                None => status.to_string(),
            }),
            Self::StartRefused {
                qemu_log, source, ..
            } => {
                let said = qemu_log
                    .clone()
                    .unwrap_or_else(|| crate::error_chain(source.as_ref()));
                said.to_ascii_lowercase().contains("kvm").then_some(said)
            }
            _ => None,
        }
    }
}

/// A domain's state with libvirt's reason for it, as `virsh domstate --reason` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainStatus {
    pub state: MachineState,
    /// libvirt's reason in its own words ("unknown", "user", "crashed", "shutdown").
    pub reason: String,
    /// The guest or its QEMU stopped by itself, not by anyone's hand: a pause libvirt cannot
    /// explain (KVM's internal errors give that), an I/O error or watchdog, a crash, a failure.
    pub on_its_own: bool,
    /// Held paused for a moment while QEMU starts.
    starting: bool,
}

impl std::fmt::Display for DomainStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            MachineState::Running => "running",
            MachineState::Stopped => "shut off",
            MachineState::Paused => "paused",
            MachineState::ShuttingDown => "shutting down",
            MachineState::Crashed => "crashed",
            MachineState::Undefined => "undefined",
            MachineState::Unknown => "in an unknown state",
        };
        write!(f, "{state} ({})", self.reason)
    }
}

impl DomainStatus {
    fn from_libvirt(
        state: virt::domain::DomainStateEnum,
        reason: virt::domain::DomainStateReasonEnum,
    ) -> Self {
        use virt::domain::{
            DomainPausedReason as P, DomainShutoffReason as O, DomainStateReason as R,
        };
        use virt::enumutil::Enum::Known;
        let on_its_own = match reason {
            Known(R::Paused(Known(reason))) => matches!(
                reason,
                P::Unknown | P::IOError | P::Watchdog | P::Crashed | P::APIError
            ),
            Known(R::Paused(_)) => true,
            Known(R::Crashed(_)) => true,
            Known(R::Shutoff(Known(reason))) => matches!(reason, O::Crashed | O::Failed),
            _ => false,
        };
        let starting = matches!(reason, Known(R::Paused(Known(P::StartingUp))));
        // virt words reasons as one lower-case word; virsh's words read better.
        let word = match reason {
            Known(reason) => reason.to_string(),
            _ => "unknown".to_string(),
        };
        let reason = match word.as_str() {
            "startingup" => "starting up",
            "shuttingdown" => "shutting down",
            "ioerror" => "I/O error",
            "fromsnapshot" => "from snapshot",
            "apierror" => "API error",
            "postcopyfailed" => "post-copy failed",
            other => other,
        };
        Self {
            state: MachineState::from_libvirt(state),
            reason: reason.to_string(),
            on_its_own,
            starting,
        }
    }

    /// The status of a domain libvirt no longer knows (removed while it booted).
    pub fn undefined() -> Self {
        Self {
            state: MachineState::Undefined,
            reason: "removed".to_string(),
            on_its_own: false,
            starting: false,
        }
    }

    /// Whether a guest in this state will not reach its SSH login without someone's help.
    pub fn ends_boot(&self) -> bool {
        match self.state {
            MachineState::Running | MachineState::Unknown => false,
            MachineState::Paused => !self.starting,
            _ => true,
        }
    }
}

/// The manifest of machine `name`.
pub fn load(paths: &Paths, name: &MachineName) -> Result<Manifest, MachineError> {
    let dir = paths.machine_dir(name.as_str());
    if !manifest::file_in(&dir).exists() {
        return Err(MachineError::NotFound(name.to_string()));
    }
    Ok(Manifest::load(&dir)?)
}

/// The SHA-512s of every image a verified, current list certifies now.
pub fn certified_bases(paths: &Paths, config: &Config) -> HashSet<String> {
    match crate::catalog::list(paths, config, OffsetDateTime::now_utc()) {
        Ok(catalogs) => catalogs
            .iter()
            .flat_map(|c| c.images.iter())
            .filter(|i| i.certified)
            .map(|i| i.sha512.clone())
            .collect(),
        Err(e) => {
            tracing::warn!("cannot read the catalogs: {e}");
            HashSet::new()
        }
    }
}

/// One machine's summary with its real state.
pub async fn summary(
    paths: &Paths,
    config: &Config,
    conn: &Connection,
    manifest: &Manifest,
) -> Result<MachineSummary, MachineError> {
    summarize(conn, manifest, &certified_bases(paths, config)).await
}

async fn summarize(
    conn: &Connection,
    manifest: &Manifest,
    certified: &HashSet<String>,
) -> Result<MachineSummary, MachineError> {
    let state = domain_state(conn, &manifest.domain_name()).await?;
    Ok(MachineSummary {
        name: manifest.name.to_string(),
        state,
        image: manifest.base.title.clone(),
        vcpus: manifest.resources.vcpus,
        memory_mib: manifest.resources.memory_mib,
        ssh_port: manifest.ssh_port,
        work_dir: manifest.work_dir.as_ref().map(|p| p.display().to_string()),
        image_certified: certified.contains(&manifest.base.sha512),
        proxy_attached: manifest.proxy_attached,
        layout: manifest.layout,
    })
}

/// Deletes the machine: stops it, removes its libvirt definition and its folder, overlay (the
/// user's changes) included. Front ends ask the user first.
pub async fn delete(paths: &Paths, conn: &Connection, name: &str) -> Result<(), MachineError> {
    let name: MachineName = name.parse()?;
    let manifest = load(paths, &name)?;
    let domain = manifest.domain_name();
    match domain_uuid(conn, &domain).await? {
        Some(uuid) if uuid == manifest.uuid => lifecycle::undefine(conn, &domain).await?,
        Some(_) => {
            tracing::warn!(%domain, "a domain of this name is not this machine's; left alone")
        }
        None => {}
    }
    let dir = paths.machine_dir(name.as_str());
    // The manifest first: a folder half removed is then an unfinished create, not a machine.
    fs_err::remove_file(manifest::file_in(&dir))
        .map_err(|e| MachineError::Files(dir.clone(), e))?;
    fs_err::remove_dir_all(&dir).map_err(|e| MachineError::Files(dir.clone(), e))?;
    tracing::info!(machine = %name, "machine deleted");
    Ok(())
}

/// The last `max_bytes` of the machine's serial console log (the current boot).
pub fn console_tail(paths: &Paths, name: &str, max_bytes: u64) -> Result<String, MachineError> {
    use std::io::{Read, Seek, SeekFrom};
    let name: MachineName = name.parse()?;
    load(paths, &name)?;
    let path = paths.machine_dir(name.as_str()).join(CONSOLE);
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(MachineError::Files(path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| MachineError::Files(path.clone(), e))?
        .len();
    file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))
        .map_err(|e| MachineError::Files(path.clone(), e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| MachineError::Files(path, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// All of the user's machines with their real state, sorted by name.
pub async fn list(
    paths: &Paths,
    config: &Config,
    conn: &Connection,
) -> Result<Vec<MachineSummary>, MachineError> {
    let manifests = manifest::load_all(&paths.machines_dir())?;
    let certified = certified_bases(paths, config);
    let mut machines = Vec::with_capacity(manifests.len());
    for m in manifests {
        machines.push(summarize(conn, &m, &certified).await?);
    }
    Ok(machines)
}

/// The state of the libvirt domain `name`, `Undefined` when libvirt does not know it.
pub async fn domain_state(conn: &Connection, name: &str) -> Result<MachineState, LibvirtError> {
    Ok(domain_status(conn, name)
        .await?
        .map_or(MachineState::Undefined, |status| status.state))
}

/// The state and reason of libvirt domain `name`, `None` when libvirt does not know it.
pub async fn domain_status(
    conn: &Connection,
    name: &str,
) -> Result<Option<DomainStatus>, LibvirtError> {
    let name = name.to_string();
    conn.run(move |c| match c.lookup_domain_by_name(&name) {
        Ok(domain) => domain
            .state()
            .map(|(state, reason)| Some(DomainStatus::from_libvirt(state, reason))),
        Err(e) if e.code().to_raw() == NO_DOMAIN => Ok(None),
        Err(e) => Err(e),
    })
    .await
}

/// The UUID of libvirt domain `name`, `None` when libvirt does not know it.
pub async fn domain_uuid(conn: &Connection, name: &str) -> Result<Option<String>, LibvirtError> {
    let name = name.to_string();
    conn.run(move |c| match c.lookup_domain_by_name(&name) {
        Ok(domain) => domain.uuid_string().map(Some),
        Err(e) if e.code().to_raw() == NO_DOMAIN => Ok(None),
        Err(e) => Err(e),
    })
    .await
}

/// A TCP port on 127.0.0.1 that is free now, for a machine's SSH forward.
pub fn free_local_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// An OpenSSH client configuration with one `Host sloop-NAME` block per machine, then `more`
/// (the blocks of runs at grid sites), so the user's own `ssh`, `scp`, `rsync` and editors'
/// remote extensions reach machines with their pinned host keys. Written to `data/ssh_config`
/// for an `Include` line in `~/.ssh/config`.
pub fn ssh_config(paths: &Paths, more: &str) -> Result<(PathBuf, String), MachineError> {
    let mut text = String::from(
        "# Written by Sloop (`sloop ssh-config`); rewritten whenever it runs. Use it with\n# `Include` in ~/.ssh/config.\n",
    );
    for m in manifest::load_all(&paths.machines_dir())? {
        let ssh = paths.machine_dir(m.name.as_str()).join("ssh");
        text.push_str(&format!(
            "\nHost {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile \"{key}\"\n  IdentitiesOnly yes\n  HostKeyAlias {alias}\n  UserKnownHostsFile \"{known}\"\n  StrictHostKeyChecking yes\n  CheckHostIP no\n",
            alias = m.domain_name(),
            port = m.ssh_port,
            user = m.user,
            key = keys::MachineKeys::client_key_file(&ssh).display(),
            known = ssh.join("known_hosts").display(),
        ));
    }
    text.push_str(more);
    let path = paths.data_dir.join("ssh_config");
    crate::paths::ensure_private_dir(&paths.data_dir)
        .map_err(|e| MachineError::Files(paths.data_dir.clone(), e))?;
    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
        .map_err(|e| MachineError::Files(path.clone(), e))?;
    Ok((path, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use virt::domain::{
        DomainPausedReason as P, DomainShutoffReason as O, DomainState as S, DomainStateReason as R,
    };
    use virt::enumutil::Enum::Known;

    fn status(state: S, reason: R) -> DomainStatus {
        DomainStatus::from_libvirt(Known(state), Known(reason))
    }

    fn stopped(status: DomainStatus) -> MachineError {
        MachineError::GuestStopped {
            machine: "m".into(),
            acceleration: Acceleration::Kvm,
            status: Box::new(status),
            qemu_log: None,
            console: "(empty)".into(),
        }
    }

    #[test]
    fn a_pause_nobody_asked_for_blames_kvm_a_users_pause_does_not() {
        let unexplained = status(S::Paused, R::Paused(Known(P::Unknown)));
        assert!(unexplained.on_its_own && unexplained.ends_boot());
        assert_eq!(unexplained.to_string(), "paused (unknown)");
        assert_eq!(
            stopped(unexplained).kvm_failure().as_deref(),
            Some("paused (unknown)")
        );

        let users = status(S::Paused, R::Paused(Known(P::User)));
        assert!(!users.on_its_own && users.ends_boot());
        assert_eq!(users.to_string(), "paused (user)");
        assert_eq!(stopped(users).kvm_failure(), None);
    }

    #[test]
    fn starting_up_is_not_the_end_of_a_boot_a_crash_is() {
        let starting = status(S::Paused, R::Paused(Known(P::StartingUp)));
        assert!(!starting.ends_boot());
        assert_eq!(starting.to_string(), "paused (starting up)");

        let crashed = status(S::Shutoff, R::Shutoff(Known(O::Crashed)));
        assert!(crashed.on_its_own && crashed.ends_boot());
        let powered_off = status(S::Shutoff, R::Shutoff(Known(O::Shutdown)));
        assert!(!powered_off.on_its_own && powered_off.ends_boot());
        assert_eq!(stopped(powered_off).kvm_failure(), None);
        assert!(!DomainStatus::undefined().on_its_own);
    }
}
