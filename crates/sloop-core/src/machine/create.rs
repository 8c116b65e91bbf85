//! Making a machine from a certified image: keys, overlay, seed, libvirt definition, manifest.
//!
//! The manifest is written last: until it exists the folder is an unfinished create, which
//! listings skip and the next create of the same name clears away (with a domain it may have
//! defined). So a create killed at any point leaves nothing that blocks a retry.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::keys::{MachineKeys, public_openssh};
use super::manifest::{BaseImage, DiskLayout, MachineName, Manifest, Resources};
use super::seed::{self, Seed, WriteFile};
use super::{MachineError, MachineSummary, disk, lifecycle};
use crate::config::Config;
use crate::image::{self, LocalState};
use crate::libvirt::Connection;
use crate::paths::{Paths, ensure_private_dir};
use crate::progress::{Meter, ProgressUnit, Reporter};

/// The account Sloop makes in every machine and logs in as.
pub const USER: &str = "sloop";
/// Its uid inside the machine (the first ordinary user on Debian and EL).
pub const USER_UID: u32 = 1000;

/// What the user asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: String,
    /// An image identifier (or its start), SHA-512 start or title; it must be certified and
    /// downloaded.
    pub image: String,
    pub resources: Resources,
    /// Shared read-write at /analysis.
    pub work_dir: Option<PathBuf>,
    /// Changes from a bundle: a checked overlay whose backing file is already the base in the
    /// store (or, for a machine booted from an ISO, its checked disk with no backing file),
    /// moved in (same file system) instead of a new, empty one.
    pub overlay: Option<PathBuf>,
    /// The bundle it came from, recorded in the manifest.
    pub origin: Option<super::manifest::Origin>,
}

impl CreateRequest {
    /// A new, empty machine from `image`.
    pub fn new(name: &str, image: &str, resources: Resources, work_dir: Option<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            image: image.to_string(),
            resources,
            work_dir,
            overlay: None,
            origin: None,
        }
    }
}

/// Creates the machine; it is left stopped. Progress goes to `reporter` as `create:<name>`.
pub async fn create(
    paths: &Paths,
    config: &Config,
    conn: &Connection,
    request: &CreateRequest,
    reporter: &Reporter,
    cancel: &CancellationToken,
    now: OffsetDateTime,
) -> Result<MachineSummary, MachineError> {
    let name: MachineName = request.name.parse()?;
    let task = format!("create:{name}");
    let mut meter = Meter::new(&task, "checking", Some(5), ProgressUnit::Steps);
    meter.update(reporter, 0, true);
    check_resources(&request.resources)?;
    let images = image::list(paths, config, now)?;
    let chosen = image::find(&images, &request.image)?;
    if !chosen.certified {
        return Err(MachineError::NotCertified {
            title: chosen.title.clone(),
            reason: chosen.problem.clone().unwrap_or_default(),
        });
    }
    let LocalState::Stored { .. } = &chosen.local else {
        return Err(MachineError::NotDownloaded {
            title: chosen.title.clone(),
            identifier: chosen.identifier.clone(),
        });
    };
    // The bytes are the endorser's; the runnable base is made from them (once), after their
    // header was checked.
    let store = image::Store::new(paths);
    let base = image::base::prepare(
        &store,
        &image::base::Wanted::for_image(chosen, &task, config.max_image_bytes()),
        reporter,
        cancel,
    )
    .await
    .map_err(image::ImageError::from)?;
    let layout = base.layout;
    let work_dir = match &request.work_dir {
        Some(dir) => Some(check_work_dir(dir)?),
        None => None,
    };

    let dir = paths.machine_dir(name.as_str());
    let domain = super::manifest::domain_name(&name);
    if super::manifest::file_in(&dir).exists() {
        return Err(MachineError::Exists(name.to_string()));
    }
    clear_unfinished(conn, &dir, &domain).await?;
    ensure_private_dir(&dir).map_err(|e| MachineError::Files(dir.clone(), e))?;
    // Recorded before libvirt hears of it, so that clearing an interrupted create removes
    // only a domain this create defined, never another Sloop's of the same name.
    let uuid = new_uuid();
    let uuid_file = dir.join(DOMAIN_UUID);
    crate::fsutil::write_atomic(&uuid_file, uuid.as_bytes(), 0o644)
        .map_err(|e| MachineError::Files(uuid_file.clone(), e))?;

    meter.stage("making keys");
    meter.update(reporter, 1, true);
    let keys = MachineKeys::generate(name.as_str())?;
    keys.save(&dir.join("ssh"))?;
    write_known_hosts(&dir, &domain, &keys)?;

    meter.stage("making the overlay");
    meter.update(reporter, 2, true);
    match &request.overlay {
        Some(ready) => fs_err::rename(ready, dir.join(super::OVERLAY))
            .map_err(|e| MachineError::Files(dir.clone(), e))?,
        None => match layout {
            DiskLayout::Overlay => {
                disk::create_overlay(
                    &base.path,
                    &dir.join(super::OVERLAY),
                    request.resources.disk_gib,
                )
                .await?
            }
            DiskLayout::LiveCd => {
                disk::create_empty(&dir.join(super::OVERLAY), request.resources.disk_gib).await?
            }
        },
    }

    meter.stage("writing the seed");
    meter.update(reporter, 3, true);
    let manifest = Manifest {
        name: name.clone(),
        uuid: uuid.clone(),
        instance_id: format!("{name}-{}", &uuid[..8]),
        user: USER.into(),
        base: BaseImage {
            sha512: chosen.sha512.clone(),
            title: chosen.title.clone(),
            path: base.path,
        },
        layout,
        resources: request.resources.clone(),
        ssh_port: super::free_local_port().map_err(|e| MachineError::Files(dir.clone(), e))?,
        work_dir,
        created: crate::time_util::rfc3339(now),
        proxy_attached: false,
        origin: request.origin.clone(),
    };
    let share = super::power::share_kind(conn).await;
    seed_for(&manifest, &keys, share)?
        .write_iso(&dir.join(super::SEED))
        .await?;

    meter.stage("defining it in libvirt");
    meter.update(reporter, 4, true);
    let accel = super::power::acceleration_for(paths, config).await?;
    super::power::define(paths, conn, &manifest, accel, share).await?;
    manifest.save(&dir)?;
    meter.update(reporter, 5, true);
    tracing::info!(machine = %name, image = %chosen.title, "machine created");
    super::summary(paths, config, conn, &manifest).await
}

fn check_resources(resources: &Resources) -> Result<(), MachineError> {
    let bad = |what: &str| Err(MachineError::Resources(what.to_string()));
    if !(1..=64).contains(&resources.vcpus) {
        return bad("vCPUs must be between 1 and 64");
    }
    if !(128..=1024 * 1024).contains(&resources.memory_mib) {
        return bad("memory must be between 128 MiB and 1 TiB");
    }
    if !(1..=16 * 1024).contains(&resources.disk_gib) {
        return bad("disk must be between 1 and 16384 GiB");
    }
    Ok(())
}

fn check_work_dir(dir: &Path) -> Result<PathBuf, MachineError> {
    let absolute = dir
        .canonicalize()
        .map_err(|e| MachineError::WorkDir(dir.to_path_buf(), e.to_string()))?;
    if !absolute.is_dir() {
        return Err(MachineError::WorkDir(
            dir.to_path_buf(),
            "not a folder".into(),
        ));
    }
    Ok(absolute)
}

/// The file in which a create records its domain's UUID before defining it.
const DOMAIN_UUID: &str = "domain-uuid";

/// Removes what an interrupted create of this name left: a domain it defined (recognised by
/// the UUID it recorded) and its folder (no manifest, so no user data). A domain of that name
/// that is not ours (another Sloop home or user on the same libvirt) is left alone and refused.
async fn clear_unfinished(conn: &Connection, dir: &Path, domain: &str) -> Result<(), MachineError> {
    if let Some(uuid) = super::domain_uuid(conn, domain).await? {
        let ours = std::fs::read_to_string(dir.join(DOMAIN_UUID)).ok();
        if ours.as_deref().map(str::trim) != Some(uuid.as_str()) {
            return Err(MachineError::DomainTaken(domain.to_string()));
        }
        tracing::info!(domain, "undefining the domain of an unfinished create");
        lifecycle::undefine(conn, domain).await?;
    }
    if dir.exists() {
        tracing::info!(folder = %dir.display(), "clearing an unfinished create");
        fs_err::remove_dir_all(dir).map_err(|e| MachineError::Files(dir.to_path_buf(), e))?;
    }
    Ok(())
}

/// `ssh/known_hosts`, under the alias `sloop-NAME` (the port may change between starts), for
/// the user's own ssh through `sloop ssh-config`.
fn write_known_hosts(dir: &Path, alias: &str, keys: &MachineKeys) -> Result<(), MachineError> {
    let line = format!("{alias} {}\n", public_openssh(keys.host.public_key()));
    let path = dir.join("ssh").join("known_hosts");
    crate::fsutil::write_atomic(&path, line.as_bytes(), 0o644)
        .map_err(|e| MachineError::Files(path.clone(), e))
}

/// The NoCloud seed for `manifest`.
pub(super) fn seed_for(
    manifest: &Manifest,
    keys: &MachineKeys,
    share: Option<crate::types::ShareKind>,
) -> Result<Seed, MachineError> {
    let mut bootcmd = vec![seed::mount_secrets(USER_UID)];
    if let (Some(_), Some(kind)) = (&manifest.work_dir, share) {
        bootcmd.push(seed::mount_work_dir(kind, USER_UID));
    }
    Ok(Seed {
        instance_id: manifest.instance_id.clone(),
        hostname: manifest.name.to_string(),
        user: manifest.user.clone(),
        uid: USER_UID,
        authorized_keys: vec![public_openssh(keys.client.public_key())],
        host_key_private: keys.host_private_openssh()?,
        host_key_public: public_openssh(keys.host.public_key()),
        write_files: vec![WriteFile {
            path: "/etc/sloop/machine".into(),
            owner: "root:root".into(),
            permissions: 0o644,
            content: format!(
                "name={}\nbase_sha512={}\n",
                manifest.name, manifest.base.sha512
            )
            .into_bytes(),
        }],
        bootcmd,
        runcmd: Vec::new(),
    })
}

/// A random RFC 4122 version 4 UUID.
fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let uuid = new_uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
        assert_ne!(new_uuid(), uuid);
    }

    #[test]
    fn resources_are_checked() {
        assert!(check_resources(&Resources::default()).is_ok());
        let r = Resources {
            vcpus: 0,
            ..Resources::default()
        };
        assert!(
            check_resources(&r)
                .unwrap_err()
                .to_string()
                .contains("vCPUs")
        );
    }
}
