//! Export: a stopped machine becomes one `.sloop` file.
//!
//! The changes are copied with `qemu-img convert -B <base>` (only what differs from the base,
//! compressed) into a scratch folder, hashed, described in the manifest, signed, and written
//! into `<file>.partial` beside the target, which is renamed into place only when whole. A
//! cancel or a kill leaves no file under the target's name; the next export clears the rest.

use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use super::format::{self, BaseRef, BundleManifest, BundleResources, ListRef, OverlayRef};
use super::sign::{self, SigningIdentity};
use super::{BundleError, overlay};
use crate::libvirt::Connection;
use crate::machine::{self, MachineName, MachineState};
use crate::paths::Paths;
use crate::progress::{Meter, ProgressUnit, Reporter};

/// What to export, and how.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub machine: String,
    /// The bundle to write; it must not exist.
    pub output: PathBuf,
    /// Free text for whoever receives it.
    pub note: String,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Exported {
    pub file: String,
    #[ts(type = "number")]
    pub bytes: u64,
    pub manifest: BundleManifest,
    /// The signer's identity; `None` for an unsigned bundle.
    pub signed_by: Option<String>,
    pub provenance: String,
}

/// Where an export of `machine` goes unless the user says otherwise: `NAME.sloop` in their
/// documents folder, else their home.
pub fn default_output(machine: &str) -> PathBuf {
    let file = format!("{machine}.sloop");
    directories::UserDirs::new()
        .map(|dirs| {
            dirs.document_dir()
                .unwrap_or_else(|| dirs.home_dir())
                .join(&file)
        })
        .unwrap_or_else(|| PathBuf::from(file))
}

/// The task an export of `machine` runs as.
pub fn task_name(machine: &str) -> String {
    format!("export:{machine}")
}

/// Exports machine `request.machine`, which must be stopped, signed by `signer` (or unsigned
/// when `None`: the caller decided so on purpose).
pub async fn export(
    paths: &Paths,
    conn: &Connection,
    request: &ExportRequest,
    signer: Option<&SigningIdentity>,
    reporter: &Reporter,
    cancel: &CancellationToken,
    now: OffsetDateTime,
) -> Result<Exported, BundleError> {
    let name: MachineName = request
        .machine
        .parse()
        .map_err(machine::MachineError::from)?;
    let manifest = machine::load(paths, &name)?;
    if request.note.chars().count() > format::MAX_NOTE {
        return Err(BundleError::Manifest {
            file: request.output.clone(),
            problem: format::ManifestProblem::Field {
                field: "note",
                problem: "must be text of at most 4096 characters",
            },
        });
    }
    if request.output.exists() {
        return Err(BundleError::OutputExists(request.output.clone()));
    }
    match machine::domain_state(conn, &manifest.domain_name())
        .await
        .map_err(machine::MachineError::from)?
    {
        MachineState::Stopped | MachineState::Undefined => {}
        _ => return Err(BundleError::Running(name.to_string())),
    }
    let store = crate::image::Store::new(paths);
    let base_file = store
        .runnable(&manifest.base.sha512)
        // A machine made before runnable bases stands on the certified file itself.
        .or_else(|| {
            store
                .stored(&manifest.base.sha512)
                .filter(|certified| *certified == manifest.base.path)
        })
        .ok_or_else(|| machine::MachineError::BaseMissing {
            machine: name.to_string(),
            path: manifest.base.path.clone(),
        })?;
    let origin =
        store
            .provenance(&manifest.base.sha512)
            .ok_or_else(|| BundleError::NoProvenance {
                machine: name.to_string(),
                title: manifest.base.title.clone(),
                short: manifest.base.sha512[..16].to_string(),
            })?;
    let list_url = crate::catalog::subscriptions(paths)?
        .into_iter()
        .find(|(catalog, _)| *catalog == origin.catalog)
        .map(|(_, subscription)| subscription.source)
        .unwrap_or_default();

    let task = task_name(name.as_str());
    let scratch = super::scratch(paths).map_err(|source| BundleError::Write {
        path: paths.data_dir.join("tmp"),
        source,
    })?;
    let changes = scratch.path().join(format::OVERLAY);
    let machine_overlay = paths.machine_dir(name.as_str()).join(machine::OVERLAY);
    let virtual_size = virtual_size(&machine_overlay)?;
    let compression = overlay::compression().await;
    let mut meter = Meter::new(
        &task,
        "copying the changes",
        Some(virtual_size),
        ProgressUnit::Bytes,
    );
    meter.update(reporter, 0, true);
    overlay::convert_changes(
        &overlay::Conversion {
            base: (manifest.layout == machine::DiskLayout::Overlay).then_some(base_file.as_path()),
            overlay: &machine_overlay,
            out: &changes,
            base_sha512: &manifest.base.sha512,
            compression,
            disk_bytes: virtual_size,
        },
        &mut meter,
        reporter,
        cancel,
    )
    .await
    .map_err(|e| BundleError::overlay(&request.output, e))?;

    let digest = {
        let (path, task, reporter, token) = (
            changes.clone(),
            task.clone(),
            reporter.clone(),
            cancel.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path)?;
            let len = file.metadata()?.len();
            let mut meter = Meter::new(&task, "hashing", Some(len), ProgressUnit::Bytes);
            super::copy_hashing(file, std::io::sink(), &mut meter, &reporter, &token)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(|source| cancelled_or(cancel, &changes, source))?
    };

    let bundle = BundleManifest {
        format: format::FORMAT.into(),
        version: format::version_for(manifest.layout),
        machine: name.to_string(),
        base: BaseRef {
            sha512: manifest.base.sha512.clone(),
            size: origin.size,
            title: origin.title.clone(),
            version: origin.version.clone(),
            identifier: origin.identifier.clone(),
            location: origin.location.clone(),
            list: ListRef {
                identifier: origin.list_identifier.clone(),
                url: list_url,
                endorser_dn: origin.endorser_dn.clone(),
                endorser_ca: origin.endorser_ca.clone(),
            },
        },
        layout: manifest.layout,
        overlay: OverlayRef {
            sha512: digest.sha512,
            size: digest.len,
            virtual_size,
            format: "qcow2".into(),
            compression: compression.into(),
        },
        resources: BundleResources {
            vcpus: manifest.resources.vcpus,
            memory_mib: manifest.resources.memory_mib,
            disk_gib: manifest.resources.disk_gib,
        },
        user: manifest.user.clone(),
        work_dir_mount: machine::seed::WORK_MOUNT_POINT.into(),
        created_at: crate::time_util::rfc3339(now),
        tool: format!("sloop {}", env!("CARGO_PKG_VERSION")),
        note: request.note.clone(),
    };
    bundle.check().map_err(|problem| BundleError::Manifest {
        file: request.output.clone(),
        problem,
    })?;
    let manifest_bytes = bundle.to_bytes();
    let signature = signer.map(|s| sign::sign(&manifest_bytes, s)).transpose()?;

    let partial = partial_of(&request.output);
    let written = {
        let (partial, changes, task, reporter, cancel, signature) = (
            partial.clone(),
            changes.clone(),
            task.clone(),
            reporter.clone(),
            cancel.clone(),
            signature.clone(),
        );
        let mtime = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        tokio::task::spawn_blocking(move || {
            write_bundle(
                &partial,
                &manifest_bytes,
                signature.as_deref(),
                &changes,
                mtime,
                &task,
                &reporter,
                &cancel,
            )
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
    };
    if let Err(source) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(cancelled_or(cancel, &request.output, source));
    }
    // Never over a file that appeared meanwhile: the rename fails instead of replacing it.
    if let Err(source) = rename_new(&partial, &request.output) {
        let _ = std::fs::remove_file(&partial);
        return Err(if source.kind() == std::io::ErrorKind::AlreadyExists {
            BundleError::OutputExists(request.output.clone())
        } else {
            BundleError::Write {
                path: request.output.clone(),
                source,
            }
        });
    }
    let bytes = std::fs::metadata(&request.output)
        .map(|m| m.len())
        .unwrap_or(0);
    let signed_by = signer.map(|s| s.identity.clone());
    let provenance = super::provenance(&bundle, signed_by.as_deref());
    tracing::info!(machine = %name, file = %request.output.display(), bytes, signed = signed_by.is_some(), "machine exported");
    Ok(Exported {
        file: request.output.display().to_string(),
        bytes,
        manifest: bundle,
        signed_by,
        provenance,
    })
}

/// `<file>.partial`, beside it (same file system, so the rename is atomic).
fn partial_of(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    output.with_file_name(name)
}

fn cancelled_or(cancel: &CancellationToken, path: &Path, source: std::io::Error) -> BundleError {
    if cancel.is_cancelled() {
        BundleError::Cancelled
    } else {
        BundleError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Renames `from` to `to` unless `to` exists: a hard link, then the old name removed; on file
/// systems without hard links (a FAT USB stick), a check and a rename.
fn rename_new(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => std::fs::remove_file(from),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if to.exists() => Err(std::io::ErrorKind::AlreadyExists.into()),
        Err(_) => std::fs::rename(from, to),
    }
}

#[allow(clippy::too_many_arguments)]
fn write_bundle(
    partial: &Path,
    manifest: &[u8],
    signature: Option<&[u8]>,
    changes: &Path,
    mtime: u64,
    task: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> std::io::Result<()> {
    // A partial file left by a killed export of the same file is replaced.
    let _ = std::fs::remove_file(partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(partial)?;
    let len = std::fs::metadata(changes)?.len();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut meter = Meter::new(task, "writing the bundle", Some(len), ProgressUnit::Bytes);
    let mut reader = Progressing {
        inner: std::fs::File::open(changes)?,
        done: 0,
        meter: &mut meter,
        reporter,
        cancel,
    };
    super::archive::write(&mut out, manifest, signature, &mut reader, len, mtime)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// A reader that reports progress and stops when cancelled.
struct Progressing<'a, R> {
    inner: R,
    done: u64,
    meter: &'a mut Meter,
    reporter: &'a Reporter,
    cancel: &'a CancellationToken,
}

impl<R: std::io::Read> std::io::Read for Progressing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.meter.update(self.reporter, self.done, n == 0);
        Ok(n)
    }
}

/// The disk size the machine sees, from its overlay's qcow2 header.
fn virtual_size(overlay: &Path) -> Result<u64, BundleError> {
    let unreadable = |source| BundleError::Read {
        file: overlay.to_path_buf(),
        source,
    };
    let head = overlay::read_head(overlay, 0, u64::MAX).map_err(unreadable)?;
    overlay::virtual_size(&head)
        .ok_or_else(|| unreadable(std::io::Error::other("not a qcow2 image")))
}

/// Writes a bundle of these members as they are, without checks, progress or `.partial`: for
/// tests that forge bundles, and for tools that repack one.
pub fn write_raw(
    out: &Path,
    manifest: &[u8],
    signature: Option<&[u8]>,
    overlay_file: &Path,
) -> std::io::Result<()> {
    let mut file = std::fs::File::create(out)?;
    let len = std::fs::metadata(overlay_file)?.len();
    super::archive::write(
        &mut file,
        manifest,
        signature,
        &mut std::fs::File::open(overlay_file)?,
        len,
        0,
    )?;
    file.flush()
}
