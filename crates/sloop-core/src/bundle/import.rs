//! Import: a bundle becomes a new machine with the bundle's changes, fresh SSH keys and a new
//! instance id.
//!
//! Order matters. The bundle's shape, manifest and signature are checked first (cheap); the
//! user's consent for an unsigned bundle or a new signer next; then the base (pulled when a
//! subscribed list certifies it); then the overlay is copied into a scratch folder of Sloop's,
//! hashed on the way and checked (header, then `qemu-img info`) before anything opens it; only
//! then is its backing file set to the local base (`rebase -u`) and the machine made from it.
//! A refusal or a kill leaves no machine and nothing in Sloop's folders that blocks a retry.

use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use super::{BundleError, overlay};
use crate::config::Config;
use crate::image::LocalState;
use crate::libvirt::Connection;
use crate::machine::manifest::{Origin, Resources};
use crate::machine::{self, CreateRequest, DiskLayout, MachineName, MachineSummary};
use crate::paths::Paths;
use crate::progress::{Meter, ProgressUnit, Reporter};

/// What to import, and what the user agreed to.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    pub file: PathBuf,
    /// The new machine's name; the bundle's machine name when `None`.
    pub name: Option<String>,
    /// Shared read-write at the work directory mount point.
    pub work_dir: Option<PathBuf>,
    /// Import a bundle nobody signed.
    pub allow_unsigned: bool,
    /// Import a bundle signed by an identity not seen before (and remember it).
    pub trust_signer: bool,
}

/// What an import made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Imported {
    pub machine: MachineSummary,
    pub provenance: String,
    /// The signer's identity; `None` for an unsigned bundle.
    pub signed_by: Option<String>,
    /// The base was downloaded for this import.
    pub pulled_base: bool,
}

/// The task an import of a bundle for machine `name` runs as.
pub fn task_name(name: &str) -> String {
    format!("import:{name}")
}

/// The name the machine from `request` will get: what the task is named after.
pub fn target_name(request: &ImportRequest) -> Result<String, BundleError> {
    if let Some(name) = &request.name {
        return Ok(name.clone());
    }
    Ok(super::open(&request.file)?.manifest.machine)
}

/// Imports the bundle in `request`. `own_identity` is the user's own DN when known: their own
/// bundles need no `trust_signer`.
pub async fn import(
    paths: &Paths,
    config: &Config,
    conn: &Connection,
    request: &ImportRequest,
    own_identity: Option<&str>,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Imported, BundleError> {
    let now = OffsetDateTime::now_utc();
    let file = &request.file;
    let opened = super::open(file)?;
    let manifest = opened.manifest.clone();
    let name: MachineName = request
        .name
        .clone()
        .unwrap_or_else(|| manifest.machine.clone())
        .parse()
        .map_err(machine::MachineError::from)?;
    if machine::manifest::file_in(&paths.machine_dir(name.as_str())).exists() {
        return Err(machine::MachineError::Exists(name.to_string()).into());
    }

    // Who vouches for it, and whether the user agreed.
    let signed_by = match super::check_signature(&opened, &config.ca_dir(), now) {
        Ok(signer) => {
            let known = super::known_signers(paths)
                .identities
                .contains(&signer.identity)
                || own_identity == Some(signer.identity.as_str());
            if !known && !request.trust_signer {
                return Err(BundleError::NewSigner {
                    file: file.clone(),
                    identity: signer.identity,
                });
            }
            Some(signer.identity)
        }
        Err(BundleError::Unsigned { .. }) if request.allow_unsigned => None,
        Err(other) => return Err(other),
    };

    // The base: certified here, pulled when it is not stored yet.
    let image = super::base_here(paths, config, &manifest, now)?;
    let pulled_base = !matches!(image.local, LocalState::Stored { .. });
    if pulled_base {
        crate::image::pull(paths, config, &image.sha512, reporter, cancel, now).await?;
    }
    // The overlay will stand on the runnable base made from the certified file (the same disk,
    // whatever format the endorser published); found at once when the pull made it.
    let task = task_name(name.as_str());
    let base = crate::image::base::prepare(
        &crate::image::Store::new(paths),
        &crate::image::base::Wanted::for_image(&image, &task, config.max_image_bytes()),
        reporter,
        cancel,
    )
    .await
    .map_err(crate::image::ImageError::from)?;
    if base.layout != manifest.layout {
        return Err(BundleError::Manifest {
            file: file.clone(),
            problem: super::format::ManifestProblem::Field {
                field: "layout",
                problem: match manifest.layout {
                    DiskLayout::LiveCd => {
                        "says the machine boots from an ISO, but its base is a disk image"
                    }
                    DiskLayout::Overlay => {
                        "says the machine's disk is an overlay, but its base is an ISO image"
                    }
                },
            },
        });
    }

    // The overlay: copied out of the bundle into a fresh folder of Sloop's, hashed on the way.
    let scratch = super::scratch(paths).map_err(|source| BundleError::Write {
        path: paths.data_dir.join("tmp"),
        source,
    })?;
    let staged = scratch.path().join(super::format::OVERLAY);
    let digest = {
        let reader =
            super::archive::overlay_reader(file, opened.members.overlay).map_err(|source| {
                BundleError::Read {
                    file: file.clone(),
                    source,
                }
            })?;
        let (path, task, reporter, token) = (
            staged.clone(),
            task.clone(),
            reporter.clone(),
            cancel.clone(),
        );
        let len = opened.members.overlay.len;
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::OpenOptionsExt as _;
            let out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            let mut meter =
                Meter::new(&task, "copying the changes", Some(len), ProgressUnit::Bytes);
            let digest = super::copy_hashing(reader, &out, &mut meter, &reporter, &token)?;
            out.sync_all()?;
            Ok(digest)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r: std::io::Result<_>| r)
        .map_err(|source| {
            if cancel.is_cancelled() {
                BundleError::Cancelled
            } else {
                BundleError::Write {
                    path: paths.data_dir.join("tmp"),
                    source,
                }
            }
        })?
    };
    if digest.sha512 != manifest.overlay.sha512 {
        return Err(BundleError::OverlayMismatch {
            file: file.clone(),
            what: "its SHA-512 differs: the overlay was changed",
        });
    }
    if digest.len != manifest.overlay.size {
        return Err(BundleError::OverlayMismatch {
            file: file.clone(),
            what: "its size differs",
        });
    }
    overlay::check(
        overlay::Location::File(&staged),
        manifest.overlay_backing(),
        manifest.overlay.virtual_size,
    )
    .await
    .map_err(|e| BundleError::overlay(file, e))?;
    // A live CD machine's disk names no base: it is the machine's own, whole.
    if manifest.layout == DiskLayout::Overlay {
        let qemu_img = crate::programs::find_program("qemu-img")
            .ok_or(BundleError::Tool(overlay::CheckError::NoQemuImg))?;
        overlay::rebase_unsafe(
            &qemu_img,
            &staged,
            &base.path.to_string_lossy(),
            "point the overlay at the local base",
        )
        .await
        .map_err(|e| BundleError::overlay(file, e))?;
    }
    if cancel.is_cancelled() {
        return Err(BundleError::Cancelled);
    }

    let create = CreateRequest {
        name: name.to_string(),
        image: manifest.base.sha512.clone(),
        resources: Resources {
            vcpus: manifest.resources.vcpus,
            memory_mib: manifest.resources.memory_mib,
            disk_gib: manifest.resources.disk_gib,
        },
        work_dir: request.work_dir.clone(),
        overlay: Some(staged),
        origin: Some(Origin {
            bundle: file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            machine: manifest.machine.clone(),
            overlay_sha512: manifest.overlay.sha512.clone(),
            signed_by: signed_by.clone(),
            created_at: manifest.created_at.clone(),
            note: manifest.note.clone(),
        }),
    };
    let summary = machine::create(paths, config, conn, &create, reporter, cancel, now).await?;
    drop(scratch);
    if let Some(identity) = &signed_by
        && let Err(e) = super::remember_signer(paths, identity)
    {
        tracing::warn!("the signer was not remembered: {e}");
    }
    let provenance = super::provenance(&manifest, signed_by.as_deref());
    tracing::info!(machine = %name, bundle = %file.display(), signed = signed_by.is_some(), "machine imported");
    Ok(Imported {
        machine: summary,
        provenance,
        signed_by,
        pulled_base,
    })
}
