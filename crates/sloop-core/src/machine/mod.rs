//! The user's personal analysis machines: a qcow2 overlay on a read-only certified base, a
//! cloud-init NoCloud seed, per-machine SSH keys, a work directory share, resources.
//!
//! libvirt holds the runtime truth (is it running?); the manifest in the machine's folder holds
//! the rest, and the two are joined whenever machines are listed.

pub mod disk;
pub mod domain;
pub mod keys;
pub mod lifecycle;
pub mod manifest;
pub mod seed;

use serde::Serialize;
use ts_rs::TS;

pub use manifest::{MachineName, Manifest};

use crate::libvirt::{Connection, LibvirtError, NO_DOMAIN};
use crate::paths::Paths;

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
}

/// Listing machines failed.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("cannot read the machines folder")]
    Folder(#[source] std::io::Error),
}

/// All of the user's machines with their real state, sorted by name.
pub async fn list(paths: &Paths, conn: &Connection) -> Result<Vec<MachineSummary>, MachineError> {
    let manifests = manifest::load_all(&paths.machines_dir())?;
    let mut machines = Vec::with_capacity(manifests.len());
    for m in manifests {
        let state = domain_state(conn, &m.domain_name()).await?;
        machines.push(MachineSummary {
            name: m.name.to_string(),
            state,
            image: m.base.title.clone(),
            vcpus: m.resources.vcpus,
            memory_mib: m.resources.memory_mib,
            ssh_port: m.ssh_port,
            work_dir: m.work_dir.as_ref().map(|p| p.display().to_string()),
        });
    }
    Ok(machines)
}

/// The state of the libvirt domain `name`, `Undefined` when libvirt does not know it.
pub async fn domain_state(conn: &Connection, name: &str) -> Result<MachineState, LibvirtError> {
    let name = name.to_string();
    let state = conn
        .run(move |c| match c.lookup_domain_by_name(&name) {
            Ok(domain) => domain.state().map(|(state, _)| Some(state)),
            Err(e) if e.code().to_raw() == NO_DOMAIN => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
    Ok(state.map_or(MachineState::Undefined, MachineState::from_libvirt))
}

/// A TCP port on 127.0.0.1 that is free now, for a machine's SSH forward.
pub fn free_local_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
