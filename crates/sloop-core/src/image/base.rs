//! The runnable base: the qcow2 disk a machine's overlay stands on, prepared once per certified
//! image.
//!
//! The certified file (`store/<sha512>`) stays exactly as the endorser listed it: it is the
//! provenance anchor everywhere (catalog, manifest, bundle, site). From it Sloop prepares:
//! - for a qcow2 file as listed: nothing; the file is its own base;
//! - for an OVA: the one disk its OVF descriptor names, read in place inside the archive;
//! - for raw, VMDK, VDI, VHD and VHDX disks, and any of these (or qcow2) compressed with gzip,
//!   bzip2, xz or zstd: a qcow2 copy made by `qemu-img convert`; a compressed file is first
//!   unpacked into a sparse file beside it (qemu-img reads no pipes);
//! - for an ISO 9660 image (µCernVM style): nothing, or (compressed) the unpacked ISO in
//!   `bases/<sha512>.iso`. It is not a disk to stand on: machines boot from it as a read-only CD
//!   and keep their changes on an empty disk of their own ([`DiskLayout::LiveCd`]).
//!
//! Before qemu-img converts anything, the disk's header is checked (inspect.rs). The result is
//! `bases/<sha512>.qcow2` (read-only), keyed by the certified file's SHA-512, with
//! `bases/<sha512>.json` saying how it was derived. Everything grows under `.partial` names and
//! is renamed only when whole, so an interrupted or cancelled preparation leaves nothing that is
//! used. A refused image gets `bases/<sha512>.refused`, one line with the reason.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use super::Store;
use super::inspect::{self, UnsafeImage};
use super::ova;
use crate::progress::{Meter, ProgressUnit, Reporter};
use crate::types::DiskLayout;

/// How a runnable base was made from its certified file (`bases/<sha512>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Derivation {
    /// The certified file's SHA-512: the key.
    pub from_sha512: String,
    /// The certified file is itself the base (a qcow2 as listed); nothing was made.
    pub as_listed: bool,
    /// `gzip`, `bzip2`, `xz` or `zstd`, when the certified file was compressed.
    pub compression: Option<String>,
    /// The OVA member the disk was read from.
    pub member: Option<String>,
    /// Where that member lies in the (unpacked) archive: offset and length in bytes. A site
    /// reads the disk there, as Sloop did.
    #[serde(default)]
    pub window: Option<[u64; 2]>,
    /// The disk's format as qemu-img read it, or `iso` for an ISO 9660 image.
    pub format: String,
    /// The command that made the base, when one did.
    pub conversion: Option<String>,
    /// The base file's SHA-512 (the certified file's when as listed).
    pub sha512: String,
    pub virtual_size: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub prepared: OffsetDateTime,
}

impl Derivation {
    /// A base made from `wanted`'s file whose disk is `format` (as qemu-img read it); the
    /// other facts are filled in by who made it.
    fn new(wanted: &Wanted<'_>, format: &str, virtual_size: u64) -> Self {
        Self {
            from_sha512: wanted.sha512.to_string(),
            as_listed: false,
            compression: None,
            member: None,
            window: None,
            format: format.to_string(),
            conversion: None,
            sha512: String::new(),
            virtual_size,
            prepared: OffsetDateTime::now_utc(),
        }
    }

    /// One line: "as listed (qcow2)", "xz, raw → qcow2", "OVA member a.vmdk, vmdk → qcow2",
    /// "as listed (ISO, booted as a read-only CD)".
    pub fn summary(&self) -> String {
        let result = match self.layout() {
            DiskLayout::LiveCd => "ISO, booted as a read-only CD".to_string(),
            DiskLayout::Overlay => format!("{} → qcow2", self.format),
        };
        if self.as_listed {
            return match self.layout() {
                DiskLayout::LiveCd => format!("as listed ({result})"),
                DiskLayout::Overlay => format!("as listed ({})", self.format),
            };
        }
        let mut parts = Vec::new();
        if let Some(c) = &self.compression {
            parts.push(format!("unpacked ({c})"));
        }
        if let Some(m) = &self.member {
            parts.push(format!("OVA member {m}"));
        }
        parts.push(result);
        parts.join(", ")
    }

    /// How machines on this base lay out their disks: an ISO is booted as a CD, with an empty
    /// disk of the machine's own; every other base is a disk to stand an overlay on.
    pub fn layout(&self) -> DiskLayout {
        if self.format == ISO {
            DiskLayout::LiveCd
        } else {
            DiskLayout::Overlay
        }
    }
}

/// Whether an image has a runnable base, for the CLI, doctor and the Images view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[ts(export)]
pub enum BaseState {
    /// The certified file is not on this computer.
    Absent,
    /// Certified and stored; the base is made when a machine is first created on it.
    Unprepared,
    /// Another Sloop is making it now.
    Preparing,
    Ready {
        path: String,
        /// How it was derived, in one line.
        derived: String,
    },
    /// The file was checked and is not run, for this reason.
    Refused { reason: String },
}

/// A runnable base could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("image {title} is refused before any machine is made on it: {reason}")]
    Refused { title: String, reason: String },
    #[error("image {0} is not on this computer; pull it first (sloop image pull)")]
    NotStored(String),
    #[error(
        "the runnable base of image {0} is being prepared by another Sloop; try again when it is done"
    )]
    Busy(String),
    #[error("preparing the runnable base of image {0} was cancelled; nothing of it is kept")]
    Cancelled(String),
    #[error("{tool} is not installed; install it: sudo apt-get install {package}")]
    Tool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("cannot prepare the runnable base of image {title}: {said}")]
    Failed { title: String, said: String },
    #[error("runnable bases at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PrepareError {
    fn failed(wanted: &Wanted<'_>, said: impl std::fmt::Display) -> Self {
        Self::Failed {
            title: wanted.title.to_string(),
            said: said.to_string(),
        }
    }

    fn refused(wanted: &Wanted<'_>, reason: String) -> Self {
        Self::Refused {
            title: wanted.title.to_string(),
            reason,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A compression a certified file may carry, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Self::Gzip)
        } else if head.starts_with(b"BZh") {
            Some(Self::Bzip2)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Self::Xz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Self::Zstd)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
            Self::Xz => "xz",
            Self::Zstd => "zstd",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
            Self::Xz => "xz-utils",
            Self::Zstd => "zstd",
        }
    }
}

impl Store {
    pub fn bases_dir(&self) -> PathBuf {
        self.root.join("bases")
    }

    /// The prepared base for the certified file `sha512`, whether or not it is there.
    pub fn base_file(&self, sha512: &str) -> PathBuf {
        self.bases_dir().join(format!("{sha512}.qcow2"))
    }

    /// The unpacked ISO for the compressed certified ISO `sha512`, whether or not it is there.
    fn base_iso(&self, sha512: &str) -> PathBuf {
        self.bases_dir().join(format!("{sha512}.iso"))
    }

    fn derivation_file(&self, sha512: &str) -> PathBuf {
        self.bases_dir().join(format!("{sha512}.json"))
    }

    fn refused_file(&self, sha512: &str) -> PathBuf {
        self.bases_dir().join(format!("{sha512}.refused"))
    }

    fn base_lock(&self, sha512: &str) -> PathBuf {
        self.bases_dir().join(format!("{sha512}.lock"))
    }

    /// Every file this store keeps for the base of `sha512` (for removal).
    pub(super) fn base_files(&self, sha512: &str) -> Vec<PathBuf> {
        vec![
            self.base_file(sha512),
            self.base_iso(sha512),
            self.derivation_file(sha512),
            self.refused_file(sha512),
            self.base_lock(sha512),
            self.bases_dir().join(format!("{sha512}.qcow2.partial")),
            self.bases_dir().join(format!("{sha512}.unpacked.partial")),
        ]
    }

    pub fn derivation(&self, sha512: &str) -> Option<Derivation> {
        std::fs::read(self.derivation_file(sha512))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    /// The file a machine's overlay stands on for the certified image `sha512`, once prepared.
    pub fn runnable(&self, sha512: &str) -> Option<PathBuf> {
        self.runnable_of(sha512, &self.derivation(sha512)?)
    }

    /// The runnable base of `sha512` with its layout, when it is ready.
    pub fn runnable_base(&self, sha512: &str) -> Option<Runnable> {
        let derivation = self.derivation(sha512)?;
        Some(Runnable {
            path: self.runnable_of(sha512, &derivation)?,
            layout: derivation.layout(),
        })
    }

    fn runnable_of(&self, sha512: &str, derivation: &Derivation) -> Option<PathBuf> {
        if derivation.as_listed {
            self.stored(sha512)
        } else {
            let path = match derivation.layout() {
                DiskLayout::LiveCd => self.base_iso(sha512),
                DiskLayout::Overlay => self.base_file(sha512),
            };
            path.is_file().then_some(path)
        }
    }

    pub fn base_state(&self, sha512: &str) -> BaseState {
        if self.stored(sha512).is_none() {
            return BaseState::Absent;
        }
        if let Some(d) = self.derivation(sha512)
            && let Some(path) = self.runnable_of(sha512, &d)
        {
            return BaseState::Ready {
                path: path.display().to_string(),
                derived: d.summary(),
            };
        }
        if let Ok(file) = File::open(self.base_lock(sha512))
            && nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock).is_err()
        {
            return BaseState::Preparing;
        }
        // A refusal by older checks (say, "no ISO images yet") is not this Sloop's: the file
        // is checked again when a machine is made on it.
        match std::fs::read_to_string(self.refused_file(sha512)) {
            Ok(record) => match record.split_once('\n') {
                Some((REFUSED_BY, reason)) => BaseState::Refused {
                    reason: reason.trim().to_string(),
                },
                _ => BaseState::Unprepared,
            },
            Err(_) => BaseState::Unprepared,
        }
    }
}

/// What to prepare.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub sha512: &'a str,
    pub title: &'a str,
    /// The list's `hv:format`, when it says.
    pub listed: Option<&'a str>,
    /// Progress goes under this task.
    pub task: &'a str,
    /// The largest virtual size allowed, in bytes.
    pub limit: u64,
}

impl<'a> Wanted<'a> {
    /// The base of the certified image `image`, reported under `task`, no larger than `limit`.
    pub fn for_image(image: &'a super::ImageView, task: &'a str, limit: u64) -> Self {
        Self {
            sha512: &image.sha512,
            title: &image.title,
            listed: image.format.as_deref(),
            task,
            limit,
        }
    }
}

/// A prepared base: where it is, and how machines on it lay out their disks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runnable {
    pub path: PathBuf,
    pub layout: DiskLayout,
}

/// Prepares (or finds) the runnable base of the certified image `wanted`.
pub async fn prepare(
    store: &Store,
    wanted: &Wanted<'_>,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Runnable, PrepareError> {
    if let Some(ready) = store.runnable_base(wanted.sha512) {
        return Ok(ready);
    }
    let certified = store
        .stored(wanted.sha512)
        .ok_or_else(|| PrepareError::NotStored(wanted.title.to_string()))?;
    let dir = store.bases_dir();
    crate::paths::ensure_private_dir(&dir).map_err(io(&dir))?;
    let lock_path = store.base_lock(wanted.sha512);
    let lock_file = File::create(&lock_path).map_err(io(&lock_path))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| PrepareError::Busy(wanted.title.to_string()))?;
    // Another Sloop may have finished while this one waited for the lock.
    if let Some(ready) = store.runnable_base(wanted.sha512) {
        return Ok(ready);
    }
    let unpacked = dir.join(format!("{}.unpacked.partial", wanted.sha512));
    let partial = dir.join(format!("{}.qcow2.partial", wanted.sha512));
    let _ = std::fs::remove_file(&unpacked);
    let _ = std::fs::remove_file(&partial);
    let result = make(
        store, wanted, &certified, &unpacked, &partial, reporter, cancel,
    )
    .await;
    let _ = std::fs::remove_file(&unpacked);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    match result {
        Err(PrepareError::Refused { reason, .. }) => {
            let record = store.refused_file(wanted.sha512);
            let text = format!("{REFUSED_BY}\n{reason}\n");
            let _ = crate::fsutil::write_atomic(&record, text.as_bytes(), 0o644);
            tracing::info!(image = %wanted.title, "image refused: {reason}");
            Err(PrepareError::Refused {
                title: wanted.title.to_string(),
                reason,
            })
        }
        Err(e) => Err(e),
        Ok(derivation) => {
            let record = store.derivation_file(wanted.sha512);
            let bytes = serde_json::to_vec_pretty(&derivation).unwrap_or_default();
            crate::fsutil::write_atomic(&record, &bytes, 0o644).map_err(io(&record))?;
            let _ = std::fs::remove_file(store.refused_file(wanted.sha512));
            tracing::info!(image = %wanted.title, derived = %derivation.summary(), "runnable base ready");
            store
                .runnable_base(wanted.sha512)
                .ok_or_else(|| PrepareError::Failed {
                    title: wanted.title.to_string(),
                    said: "the base vanished as it was made".into(),
                })
        }
    }
}

async fn make(
    store: &Store,
    wanted: &Wanted<'_>,
    certified: &Path,
    unpacked: &Path,
    partial: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Derivation, PrepareError> {
    let refused = |reason: String| PrepareError::refused(wanted, reason);
    let listed = wanted.listed.map(|l| l.trim().to_ascii_lowercase());
    let listed = listed.as_deref();
    let mut meter = Meter::new(wanted.task, "checking the image", None, ProgressUnit::Bytes);
    meter.update(reporter, 0, true);

    // Unpacked first, when compressed: everything after reads the disk inside. A raw disk has
    // no header to check: it goes straight into the base as it unpacks.
    let compression = Compression::sniff(&head(certified)?);
    if let Some(c) = compression
        && listed.is_some_and(|l| inspect::qemu_name(l) == "raw")
    {
        return stream_raw(store, wanted, c, certified, partial, reporter, cancel).await;
    }
    let disk_file = match compression {
        Some(c) => {
            let total = std::fs::metadata(certified).map_err(io(certified))?.len();
            meter = Meter::new(
                wanted.task,
                &format!("unpacking ({})", c.name()),
                Some(total),
                ProgressUnit::Bytes,
            );
            unpack(
                c,
                certified,
                unpacked,
                Sink::Sparse,
                wanted,
                &mut meter,
                reporter,
                cancel,
            )
            .await?;
            unpacked.to_path_buf()
        }
        None => certified.to_path_buf(),
    };

    // An ISO is booted as it is: checked for what it claims, never converted.
    let disk_head = head(&disk_file)?;
    let is_iso = is_iso9660(&disk_file)?;
    if listed == Some(ISO) && !is_iso {
        return Err(refused(
            "its list says ISO, but it is not an ISO 9660 image".into(),
        ));
    }
    if is_iso {
        // An ISO starts with 32 KiB of zeros (or a hybrid MBR), never a disk format's magic: a
        // file that is both is refused, not guessed at.
        if let Some(format) = inspect::disk_magic(&disk_head) {
            return Err(refused(format!(
                "it is an ISO 9660 image and also looks like a {format} disk: refused as ambiguous"
            )));
        }
        if let Some(other) = listed.filter(|l| *l != ISO) {
            return Err(refused(format!(
                "it is an ISO 9660 image, but its list says {other}"
            )));
        }
        let size = std::fs::metadata(&disk_file).map_err(io(&disk_file))?.len();
        if size > wanted.limit {
            return Err(refused(format!(
                "it is an ISO image of {} GiB, more than the limit of {} GiB; if that is real, raise max_image_gib in config.toml",
                size.div_ceil(1 << 30),
                wanted.limit >> 30
            )));
        }
        let derivation = Derivation::new(wanted, ISO, size);
        return match compression {
            None => Ok(Derivation {
                as_listed: true,
                sha512: wanted.sha512.to_string(),
                ..derivation
            }),
            Some(c) => {
                let derivation = Derivation {
                    compression: Some(c.name().to_string()),
                    ..derivation
                };
                place(store, wanted, &disk_file, derivation, &mut meter, reporter).await
            }
        };
    }

    // An OVA gives the disk its descriptor names, read where it lies in the archive.
    let is_ova = ova::is_tar(&disk_head);
    if listed == Some("ova") && !is_ova {
        return Err(refused(
            "its list says OVA, but it is not a tar archive".into(),
        ));
    }
    if is_ova && listed.is_some_and(|l| l != "ova") {
        return Err(refused(format!(
            "it is an OVA archive, but its list says {}",
            wanted.listed.unwrap_or_default()
        )));
    }
    // The disk qemu-img reads: the file itself, or (an OVA) a raw window on the archive where
    // the descriptor's disk lies, with the format the descriptor says (or, unsaid, probed
    // through the window, never as raw).
    let (window, member, expected) = if is_ova {
        let path = disk_file.clone();
        let disk = tokio::task::spawn_blocking(move || ova::read(&path))
            .await
            .map_err(|e| PrepareError::failed(wanted, e))?
            .map_err(refused)?;
        let window = serde_json::json!({
            "driver": "raw",
            "offset": disk.offset,
            "size": disk.size,
            "file": {"driver": "file", "filename": disk_file.to_string_lossy()},
        });
        (
            Some(window),
            Some((disk.member, [disk.offset, disk.size])),
            disk.format,
        )
    } else {
        (None, None, None)
    };
    let in_window = |format: Option<&str>| {
        let window = window.clone().unwrap_or_default();
        match format {
            Some(driver) => format!(
                "json:{}",
                serde_json::json!({"driver": driver, "file": window})
            ),
            None => format!("json:{window}"),
        }
    };
    let source = match &window {
        Some(_) => in_window(expected.as_deref()),
        None => disk_file.to_string_lossy().into_owned(),
    };
    let (member, window_bytes) = member.unzip();
    let expect = expected.as_deref().or(listed.filter(|l| *l != "ova"));
    let inspected = inspect::check_source(&source, expect, wanted.limit)
        .await
        .map_err(|e: UnsafeImage| refused(e.to_string()))?;
    if cancel.is_cancelled() {
        return Err(PrepareError::Cancelled(wanted.title.to_string()));
    }

    if compression.is_none() && member.is_none() && inspected.format == "qcow2" {
        return Ok(Derivation {
            as_listed: true,
            sha512: wanted.sha512.to_string(),
            ..Derivation::new(wanted, &inspected.format, inspected.virtual_size)
        });
    }

    meter = Meter::new(
        wanted.task,
        "making the runnable base",
        Some(inspected.virtual_size),
        ProgressUnit::Bytes,
    );
    meter.update(reporter, 0, true);
    // Read with the format the header was checked as: qemu-img never probes again.
    let (read_format, read_source) = match &window {
        Some(_) => (None, in_window(Some(&inspected.format))),
        None => (Some(inspected.format.as_str()), source.clone()),
    };
    convert(
        wanted,
        read_format,
        &read_source,
        partial,
        inspected.virtual_size,
        &mut meter,
        reporter,
        cancel,
    )
    .await?;
    let derivation = Derivation {
        compression: compression.map(|c| c.name().to_string()),
        member,
        window: window_bytes,
        conversion: Some(format!("qemu-img convert -f {} -O qcow2", inspected.format)),
        ..Derivation::new(wanted, &inspected.format, inspected.virtual_size)
    };
    place(store, wanted, partial, derivation, &mut meter, reporter).await
}

/// A compressed raw disk: unpacked straight into a qcow2 file (no copy of the raw disk on the
/// way), which `qemu-img check` then finds clean.
#[allow(clippy::too_many_arguments)]
async fn stream_raw(
    store: &Store,
    wanted: &Wanted<'_>,
    compression: Compression,
    certified: &Path,
    partial: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Derivation, PrepareError> {
    let total = std::fs::metadata(certified).map_err(io(certified))?.len();
    let mut meter = Meter::new(
        wanted.task,
        &format!("unpacking ({}) into the runnable base", compression.name()),
        Some(total),
        ProgressUnit::Bytes,
    );
    unpack(
        compression,
        certified,
        partial,
        Sink::Qcow2,
        wanted,
        &mut meter,
        reporter,
        cancel,
    )
    .await?;
    let failed = |said: String| PrepareError::failed(wanted, said);
    let qemu_img = crate::programs::find_program("qemu-img").ok_or(PrepareError::Tool {
        tool: "qemu-img",
        package: "qemu-utils",
    })?;
    let checked = Command::new(qemu_img)
        .args(["check", "-q", "-f", "qcow2"])
        .arg(partial)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| failed(format!("cannot run qemu-img: {e}")))?;
    if !checked.status.success() {
        return Err(failed(format!(
            "the qcow2 file made from it is not clean: {}",
            crate::qemu_img::last_line(&String::from_utf8_lossy(&checked.stderr))
        )));
    }
    let inspected = inspect::check_source(&partial.to_string_lossy(), Some("qcow2"), wanted.limit)
        .await
        .map_err(|e| failed(e.to_string()))?;
    // An ISO listed as raw is reported, as it is uncompressed: its volume descriptor read back
    // through the qcow2 file just made (qemu-io prints the bytes in hex, then as text).
    let is_iso = match crate::programs::find_program("qemu-io") {
        Some(qemu_io) => Command::new(qemu_io)
            .args(["-r", "-f", "qcow2", "-c", "read -v 32768 8"])
            .arg(partial)
            .stdin(Stdio::null())
            .output()
            .await
            .is_ok_and(|o| {
                o.status.success()
                    && String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .is_some_and(|l| l.starts_with("00008000:  01 43 44 30 30 31 "))
            }),
        None => false,
    };
    if is_iso {
        return Err(PrepareError::refused(
            wanted,
            "it is an ISO 9660 image, but its list says raw".into(),
        ));
    }
    let derivation = Derivation {
        compression: Some(compression.name().to_string()),
        conversion: Some("unpacked straight into qcow2 by Sloop".into()),
        ..Derivation::new(wanted, "raw", inspected.virtual_size)
    };
    place(store, wanted, partial, derivation, &mut meter, reporter).await
}

/// Hashes the finished base, makes it read-only and renames it into place; its derivation.
async fn place(
    store: &Store,
    wanted: &Wanted<'_>,
    partial: &Path,
    mut derivation: Derivation,
    meter: &mut Meter,
    reporter: &Reporter,
) -> Result<Derivation, PrepareError> {
    meter.stage("checking the runnable base");
    meter.update(reporter, 0, true);
    let hashed = partial.to_path_buf();
    derivation.sha512 = tokio::task::spawn_blocking(move || crate::fsutil::sha512_file(&hashed))
        .await
        .map_err(|e| PrepareError::failed(wanted, e))?
        .map_err(io(partial))?;
    crate::fsutil::set_mode(partial, 0o444).map_err(io(partial))?;
    let target = match derivation.layout() {
        DiskLayout::LiveCd => store.base_iso(wanted.sha512),
        DiskLayout::Overlay => store.base_file(wanted.sha512),
    };
    std::fs::rename(partial, &target).map_err(io(&target))?;
    Ok(derivation)
}

/// The first line of a refusal record: which checks refused it. A new check, or a format newly
/// run, makes a new one; records of other checks are not believed.
const REFUSED_BY: &str = "refused by Sloop's image checks, version 2";

/// The `format` of an ISO 9660 image in a derivation (qemu-img would call it raw).
pub const ISO: &str = "iso";

/// Whether `path` is an ISO 9660 image: its first volume descriptor, at 32 KiB, says `CD001`.
fn is_iso9660(path: &Path) -> Result<bool, PrepareError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut descriptor = [0u8; 6];
    file.seek(SeekFrom::Start(32 * 1024)).map_err(io(path))?;
    let filled = read_full(&mut file, &mut descriptor).map_err(io(path))?;
    Ok(filled == descriptor.len() && &descriptor[1..] == b"CD001")
}

fn head(path: &Path) -> Result<Vec<u8>, PrepareError> {
    let mut buffer = vec![0u8; 512];
    let mut file = File::open(path).map_err(io(path))?;
    let filled = read_full(&mut file, &mut buffer).map_err(io(path))?;
    buffer.truncate(filled);
    Ok(buffer)
}

/// What unpacking writes: a sparse copy of the unpacked bytes, or (for a raw disk) a qcow2
/// file made from them as they come (qcow2.rs), with no copy in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Sparse,
    Qcow2,
}

/// How the writing side of an unpacking ended.
enum Unpacked {
    Whole,
    Cancelled,
    /// More bytes came than the limit allows: the disk is larger than the user allows.
    TooLarge(u64),
}

/// Unpacks `from` into `to` with the compression's own tool, fed from here (so progress counts
/// the certified file's bytes), into `sink`: sparse (runs of zeros skipped, as `xz -d` does) or
/// qcow2. Stops at `wanted.limit` bytes.
#[allow(clippy::too_many_arguments)]
async fn unpack(
    compression: Compression,
    from: &Path,
    to: &Path,
    sink: Sink,
    wanted: &Wanted<'_>,
    meter: &mut Meter,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<(), PrepareError> {
    let tool = crate::programs::find_program(compression.name()).ok_or(PrepareError::Tool {
        tool: compression.name(),
        package: compression.package(),
    })?;
    let total = std::fs::metadata(from).map_err(io(from))?.len();
    let mut command = std::process::Command::new(tool);
    command.args(["-d", "-c"]);
    if compression == Compression::Xz {
        // xz 5.4 unpacks on every core when the file was packed in blocks (xz -T).
        command.arg("-T0");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            PrepareError::failed(wanted, format!("cannot run {}: {e}", compression.name()))
        })?;
    let read = Arc::new(AtomicU64::new(0));
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    // A larger pipe: fewer switches between the tool and the writer for gigabytes of output.
    let _ = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&stdout),
        nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20),
    );
    let mut stderr = child.stderr.take().expect("piped");
    let feeder = {
        let from = from.to_path_buf();
        let read = Arc::clone(&read);
        let cancel = cancel.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut file = File::open(&from)?;
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                let n = file.read(&mut buffer)?;
                if n == 0 {
                    return Ok(());
                }
                stdin.write_all(&buffer[..n])?;
                read.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let writer = {
        let to = to.to_path_buf();
        let cancel = cancel.clone();
        let limit = wanted.limit;
        tokio::task::spawn_blocking(move || -> std::io::Result<Unpacked> {
            let mut out = File::create(&to)?;
            let mut qcow2 = (sink == Sink::Qcow2)
                .then(|| out.try_clone().map(super::qcow2::StreamWriter::new))
                .transpose()?;
            let mut buffer = vec![0u8; 1 << 20];
            let mut length = 0u64;
            loop {
                if cancel.is_cancelled() {
                    return Ok(Unpacked::Cancelled);
                }
                let n = read_full(&mut stdout, &mut buffer)?;
                if n == 0 {
                    break;
                }
                length += n as u64;
                if length > limit {
                    return Ok(Unpacked::TooLarge(length));
                }
                match qcow2.as_mut() {
                    Some(writer) => writer.write(&buffer[..n])?,
                    None => write_sparse(&mut out, &buffer[..n])?,
                }
            }
            match qcow2 {
                Some(writer) => {
                    writer.finish()?;
                }
                None => {
                    out.set_len(length)?;
                    out.sync_all()?;
                }
            }
            Ok(Unpacked::Whole)
        })
    };
    meter.update(reporter, 0, true);
    let mut writer = std::pin::pin!(writer);
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(200));
    let whole = loop {
        tokio::select! {
            done = &mut writer => break done,
            _ = ticks.tick() => {
                // Progress in bytes of the certified file read so far.
                meter.update(reporter, read.load(Ordering::Relaxed), false);
            }
        }
    };
    // A writer that stopped early (cancelled, too large, failed) leaves the tool nobody reads.
    if !matches!(whole, Ok(Ok(Unpacked::Whole))) {
        let _ = child.kill();
    }
    let status = child.wait().map_err(io(from))?;
    let fed = feeder.join().unwrap_or(Ok(()));
    let said = errors.join().unwrap_or_default();
    if cancel.is_cancelled() {
        return Err(PrepareError::Cancelled(wanted.title.to_string()));
    }
    let whole = whole
        .map_err(|e| PrepareError::failed(wanted, e))?
        .map_err(io(to))?;
    if let Unpacked::TooLarge(seen) = whole {
        return Err(PrepareError::refused(
            wanted,
            format!(
                "it unpacks to more than {} GiB (at least {} GiB), the limit; if that is real, raise max_image_gib in config.toml",
                wanted.limit >> 30,
                seen >> 30
            ),
        ));
    }
    if !status.success() || !matches!(whole, Unpacked::Whole) {
        return Err(PrepareError::refused(
            wanted,
            format!(
                "it looks {}-compressed but does not unpack ({})",
                compression.name(),
                crate::qemu_img::last_line(&said)
            ),
        ));
    }
    fed.map_err(io(from))?;
    meter.update(reporter, total, true);
    Ok(())
}

fn read_full(from: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match from.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes `data` at the file's position, seeking over 64 KiB blocks that are all zeros.
fn write_sparse(out: &mut File, data: &[u8]) -> std::io::Result<()> {
    const BLOCK: usize = 64 << 10;
    // Compared as slices (memcmp), many times faster than byte by byte.
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    for chunk in data.chunks(BLOCK) {
        if chunk == &ZEROS[..chunk.len()] {
            out.seek(SeekFrom::Current(chunk.len() as i64))?;
        } else {
            out.write_all(chunk)?;
        }
    }
    Ok(())
}

/// `qemu-img convert -O qcow2` with progress in bytes of the disk; cancelling kills it.
#[allow(clippy::too_many_arguments)]
async fn convert(
    wanted: &Wanted<'_>,
    format: Option<&str>,
    source: &str,
    out: &Path,
    disk_bytes: u64,
    meter: &mut Meter,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<(), PrepareError> {
    let qemu_img = crate::programs::find_program("qemu-img").ok_or(PrepareError::Tool {
        tool: "qemu-img",
        package: "qemu-utils",
    })?;
    let mut command = Command::new(qemu_img);
    command.args(["convert", "-p", "-U"]);
    if let Some(format) = format {
        command.args(["-f", format]);
    }
    let child = command
        .args(["-O", "qcow2"])
        .arg(source)
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| PrepareError::failed(wanted, format!("cannot run qemu-img: {e}")))?;
    match crate::qemu_img::follow(child, disk_bytes, meter, reporter, cancel)
        .await
        .map_err(|e| PrepareError::failed(wanted, e))?
    {
        crate::qemu_img::Ended::Done => Ok(()),
        crate::qemu_img::Ended::Cancelled => Err(PrepareError::Cancelled(wanted.title.to_string())),
        crate::qemu_img::Ended::Failed(said) => Err(PrepareError::failed(wanted, said)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sloop_testkit::run_in as run;

    const GIB: u64 = 1 << 30;

    /// Puts `file` in a fresh store as a certified file; its SHA-512.
    fn certify(store: &Store, file: &Path) -> String {
        let sha512 = crate::fsutil::sha512_file(file).unwrap();
        std::fs::create_dir_all(store.store_dir()).unwrap();
        std::fs::copy(file, store.file(&sha512)).unwrap();
        sha512
    }

    async fn prepared(
        store: &Store,
        file: &Path,
        listed: Option<&str>,
    ) -> Result<PathBuf, PrepareError> {
        let sha512 = certify(store, file);
        let wanted = Wanted {
            sha512: &sha512,
            title: "Test image",
            listed,
            task: "pull:test",
            limit: 256 * GIB,
        };
        prepare(
            store,
            &wanted,
            &Reporter::silent(),
            &CancellationToken::new(),
        )
        .await
        .map(|base| base.path)
    }

    /// An ISO is booted as it is (µCernVM style): as listed it is its own base, compressed it
    /// is unpacked once into `bases/<sha512>.iso`; either way machines boot it as a CD. A list
    /// that says otherwise than the file is reported, not guessed past.
    #[tokio::test]
    async fn an_iso_is_booted_as_listed_and_unpacked_once_when_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let store = Store {
            root: d.join("images"),
        };
        std::fs::create_dir(d.join("cd")).unwrap();
        std::fs::write(d.join("cd/hello.txt"), "live\n").unwrap();
        let tool = crate::host::iso_tool().expect("an ISO 9660 tool (genisoimage or xorriso)");
        let mut args: Vec<&str> = Vec::new();
        if tool.ends_with("xorriso") {
            args.extend(["-as", "mkisofs"]);
        }
        args.extend(["-quiet", "-R", "-V", "SLOOP_LIVE", "-o", "live.iso", "cd"]);
        run(d, tool.to_str().unwrap(), &args);
        run(d, "gzip", &["-k", "live.iso"]);
        run(
            d,
            "qemu-img",
            &["create", "-q", "-f", "qcow2", "disk.qcow2", "64M"],
        );

        // Unsaid or said ISO: the certified file itself, as listed.
        for listed in [None, Some("iso"), Some("ISO")] {
            let store = Store {
                root: d.join(format!("images-{listed:?}")),
            };
            let base = prepared(&store, &d.join("live.iso"), listed).await.unwrap();
            let sha512 = crate::fsutil::sha512_file(&d.join("live.iso")).unwrap();
            assert_eq!(base, store.file(&sha512));
            let derivation = store.derivation(&sha512).unwrap();
            assert!(derivation.as_listed);
            assert_eq!(derivation.format, ISO);
            assert_eq!(derivation.layout(), DiskLayout::LiveCd);
            assert_eq!(
                derivation.summary(),
                "as listed (ISO, booted as a read-only CD)"
            );
        }

        // Compressed: unpacked once, read-only, hashed.
        let base = prepared(&store, &d.join("live.iso.gz"), Some("iso"))
            .await
            .unwrap();
        let sha512 = crate::fsutil::sha512_file(&d.join("live.iso.gz")).unwrap();
        assert_eq!(base, store.base_iso(&sha512));
        assert_eq!(
            std::fs::read(&base).unwrap(),
            std::fs::read(d.join("live.iso")).unwrap()
        );
        let derivation = store.derivation(&sha512).unwrap();
        assert_eq!(derivation.layout(), DiskLayout::LiveCd);
        assert_eq!(
            derivation.sha512,
            crate::fsutil::sha512_file(&d.join("live.iso")).unwrap()
        );
        assert_eq!(
            derivation.summary(),
            "unpacked (gzip), ISO, booted as a read-only CD"
        );
        assert!(std::fs::metadata(&base).unwrap().permissions().readonly());

        // The list and the file disagree: refused, with both named.
        let refused = |e: PrepareError| match e {
            PrepareError::Refused { reason, .. } => reason,
            other => panic!("not refused: {other}"),
        };
        let store = Store {
            root: d.join("images-wrong"),
        };
        let said_raw = prepared(&store, &d.join("live.iso"), Some("raw"))
            .await
            .unwrap_err();
        assert_eq!(
            refused(said_raw),
            "it is an ISO 9660 image, but its list says raw"
        );
        // Compressed, the same: found in the disk it unpacked into, which is not kept.
        let said_raw = prepared(&store, &d.join("live.iso.gz"), Some("raw"))
            .await
            .unwrap_err();
        assert_eq!(
            refused(said_raw),
            "it is an ISO 9660 image, but its list says raw"
        );
        let gz = crate::fsutil::sha512_file(&d.join("live.iso.gz")).unwrap();
        assert!(store.runnable(&gz).is_none());
        assert_eq!(
            std::fs::read_dir(store.bases_dir())
                .unwrap()
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(&gz) && !name.ends_with(".refused") && !name.ends_with(".lock")
                })
                .count(),
            0
        );
        let said_iso = prepared(&store, &d.join("disk.qcow2"), Some("iso"))
            .await
            .unwrap_err();
        assert_eq!(
            refused(said_iso),
            "its list says ISO, but it is not an ISO 9660 image"
        );

        // A qcow2 naming a host file as its backing file, with an ISO's signature where a CD
        // keeps it: neither opened as a disk nor booted as a CD, unsaid or said.
        run(
            d,
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                "/etc/hostname",
                "both.img",
                "64M",
            ],
        );
        let mut both = std::fs::OpenOptions::new()
            .write(true)
            .open(d.join("both.img"))
            .unwrap();
        both.seek(SeekFrom::Start(32 * 1024)).unwrap();
        both.write_all(b"\x01CD001\x01").unwrap();
        drop(both);
        for listed in [None, Some("iso"), Some("qcow2")] {
            let store = Store {
                root: d.join(format!("images-both-{listed:?}")),
            };
            let error = prepared(&store, &d.join("both.img"), listed)
                .await
                .unwrap_err();
            assert_eq!(
                refused(error),
                "it is an ISO 9660 image and also looks like a qcow2 disk: refused as ambiguous",
                "{listed:?}"
            );
            let sha512 = crate::fsutil::sha512_file(&d.join("both.img")).unwrap();
            assert!(store.runnable(&sha512).is_none());
            assert!(matches!(
                store.base_state(&sha512),
                BaseState::Refused { .. }
            ));
        }

        // A refusal recorded by older checks (before ISO images ran) is not believed: the image
        // is unprepared, and checked again when a machine is made on it.
        let sha512 = crate::fsutil::sha512_file(&d.join("live.iso")).unwrap();
        let store = Store {
            root: d.join("images-old-refusal"),
        };
        certify(&store, &d.join("live.iso"));
        std::fs::create_dir_all(store.bases_dir()).unwrap();
        std::fs::write(
            store.refused_file(&sha512),
            "it is an ISO image; Sloop cannot boot machines from ISO images yet",
        )
        .unwrap();
        assert_eq!(store.base_state(&sha512), BaseState::Unprepared);
    }

    /// The same disk as the endorser would publish it, in every format and packing Sloop reads,
    /// made by the real tools: each gives a runnable qcow2 base whose guest-visible bytes are
    /// the original's (qemu-img compare), keyed by the certified file, with its derivation.
    #[tokio::test]
    async fn every_published_form_of_a_disk_gives_the_same_runnable_base() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let store = Store {
            root: d.join("images"),
        };
        // A 64 MiB disk with data at its start, middle and end.
        run(
            d,
            "qemu-img",
            &["create", "-q", "-f", "raw", "disk.raw", "64M"],
        );
        for (offset, text) in [
            (0, "start"),
            (32 << 20, "middle"),
            ((64 << 20) - 512, "end"),
        ] {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(d.join("disk.raw"))
                .unwrap();
            f.seek(SeekFrom::Start(offset)).unwrap();
            f.write_all(text.repeat(100).as_bytes()).unwrap();
        }
        run(
            d,
            "qemu-img",
            &[
                "convert",
                "-f",
                "raw",
                "-O",
                "qcow2",
                "disk.raw",
                "disk.qcow2",
            ],
        );
        run(
            d,
            "qemu-img",
            &["convert", "-f", "raw", "-O", "vdi", "disk.raw", "disk.vdi"],
        );
        run(
            d,
            "qemu-img",
            &[
                "convert",
                "-f",
                "raw",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                "disk.raw",
                "disk.vmdk",
            ],
        );
        run(d, "xz", &["-k", "-1", "disk.raw"]);
        run(d, "gzip", &["-k", "-1", "disk.qcow2"]);
        std::fs::write(
            d.join("disk.ovf"),
            sloop_testkit::virtualbox_ovf("disk.vmdk", 64 << 20, 4096),
        )
        .unwrap();
        run(
            d,
            "tar",
            &["--format=ustar", "-cf", "disk.ova", "disk.ovf", "disk.vmdk"],
        );

        let cases: [(&str, Option<&str>, &str); 6] = [
            ("disk.qcow2", Some("QCOW2"), "as listed (qcow2)"),
            ("disk.vdi", Some("VDI"), "vdi → qcow2"),
            ("disk.vmdk", None, "vmdk → qcow2"),
            ("disk.raw.xz", Some("RAW"), "unpacked (xz), raw → qcow2"),
            (
                "disk.qcow2.gz",
                Some("qcow2"),
                "unpacked (gzip), qcow2 → qcow2",
            ),
            (
                "disk.ova",
                Some("OVA"),
                "OVA member disk.vmdk, vmdk → qcow2",
            ),
        ];
        for (file, listed, derived) in cases {
            let base = prepared(&store, &d.join(file), listed)
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            sloop_testkit::assert_same_disk(&d.join("disk.raw"), &base);
            let sha512 = crate::fsutil::sha512_file(&d.join(file)).unwrap();
            let BaseState::Ready {
                path,
                derived: said,
            } = store.base_state(&sha512)
            else {
                panic!("{file}: {:?}", store.base_state(&sha512));
            };
            assert_eq!(said, derived, "{file}");
            assert_eq!(PathBuf::from(path), base);
            let derivation = store.derivation(&sha512).unwrap();
            assert_eq!(derivation.from_sha512, sha512);
            if file == "disk.raw.xz" {
                assert_eq!(
                    derivation.conversion.as_deref(),
                    Some("unpacked straight into qcow2 by Sloop"),
                    "a compressed raw disk goes straight into the base"
                );
            }
            assert_eq!(derivation.virtual_size, 64 << 20);
            assert_eq!(
                derivation.sha512,
                crate::fsutil::sha512_file(&base).unwrap()
            );
            if derivation.as_listed {
                assert_eq!(base, store.file(&sha512), "a qcow2 as listed is not copied");
            } else {
                assert_eq!(base, store.base_file(&sha512));
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(
                    std::fs::metadata(&base).unwrap().permissions().mode() & 0o777,
                    0o444
                );
            }
        }
        let leftovers: Vec<_> = std::fs::read_dir(store.bases_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// Refusals are recorded with their reason; a cancelled preparation keeps nothing.
    #[tokio::test]
    async fn refused_and_cancelled_preparations_leave_nothing_used() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let store = Store {
            root: d.join("images"),
        };
        run(
            d,
            "qemu-img",
            &["create", "-q", "-f", "qcow2", "disk.qcow2", "8M"],
        );
        run(
            d,
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "vmdk",
                "-o",
                "subformat=monolithicFlat",
                "flat.vmdk",
                "1M",
            ],
        );
        std::fs::write(d.join("noise.xz"), b"\xfd7zXZ\0 not really xz").unwrap();
        // The descriptor names a file on this computer as its data, as a crafted image would.
        std::fs::write(d.join("secret"), vec![b's'; 1 << 20]).unwrap();
        let descriptor = std::fs::read_to_string(d.join("flat.vmdk")).unwrap();
        let secret = d.join("secret");
        std::fs::write(
            d.join("flat.vmdk"),
            descriptor.replace("\"flat-flat.vmdk\"", &format!("\"{}\"", secret.display())),
        )
        .unwrap();

        let flat = prepared(&store, &d.join("flat.vmdk"), Some("VMDK"))
            .await
            .unwrap_err();
        assert!(flat.to_string().contains("monolithicFlat"), "{flat}");
        let sha512 = crate::fsutil::sha512_file(&d.join("flat.vmdk")).unwrap();
        assert!(
            matches!(store.base_state(&sha512), BaseState::Refused { reason } if reason.contains("other files"))
        );
        assert!(store.runnable(&sha512).is_none());

        let ova_listed_as_qcow2 = prepared(&store, &d.join("disk.qcow2"), Some("OVA"))
            .await
            .unwrap_err();
        assert!(
            ova_listed_as_qcow2
                .to_string()
                .contains("its list says OVA, but it is not a tar archive"),
            "{ova_listed_as_qcow2}"
        );

        let noise = prepared(&store, &d.join("noise.xz"), Some("RAW"))
            .await
            .unwrap_err();
        assert!(noise.to_string().contains("does not unpack"), "{noise}");

        // A raw disk that unpacks to more than the limit: stopped as soon as it passes it.
        run(
            d,
            "qemu-img",
            &["create", "-q", "-f", "raw", "big.raw", "8M"],
        );
        run(d, "xz", &["-1", "big.raw"]);
        let sha512 = certify(&store, &d.join("big.raw.xz"));
        let wanted = Wanted {
            sha512: &sha512,
            title: "Big",
            listed: Some("RAW"),
            task: "pull:test",
            limit: 4 << 20,
        };
        let big = prepare(
            &store,
            &wanted,
            &Reporter::silent(),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(big.to_string().contains("it unpacks to more than"), "{big}");
        assert!(!store.base_file(&sha512).exists());

        run(d, "gzip", &["-k", "disk.qcow2"]);
        let sha512 = certify(&store, &d.join("disk.qcow2.gz"));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let wanted = Wanted {
            sha512: &sha512,
            title: "Test image",
            listed: None,
            task: "pull:test",
            limit: 256 * GIB,
        };
        let cancelled = prepare(&store, &wanted, &Reporter::silent(), &cancel)
            .await
            .unwrap_err();
        assert!(
            matches!(cancelled, PrepareError::Cancelled(_)),
            "{cancelled}"
        );
        assert_eq!(store.base_state(&sha512), BaseState::Unprepared);
        assert!(!store.base_file(&sha512).exists());
        assert!(
            !store
                .bases_dir()
                .join(format!("{sha512}.unpacked.partial"))
                .exists()
        );
    }

    #[test]
    fn compressions_are_told_by_their_first_bytes() {
        assert_eq!(
            Compression::sniff(&[0x1f, 0x8b, 8]),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::sniff(b"BZh91AY"), Some(Compression::Bzip2));
        assert_eq!(
            Compression::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]),
            Some(Compression::Xz)
        );
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::sniff(b"QFI\xfb"), None);
        assert_eq!(Compression::sniff(b""), None);
    }

    #[test]
    fn sparse_writing_keeps_the_bytes_and_skips_the_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut data = vec![0u8; 1 << 20];
        data[100] = 1;
        data[(1 << 20) - 1] = 2;
        let mut tail = vec![0u8; 3 << 20];
        tail[5] = 9;
        {
            let mut out = File::create(&path).unwrap();
            write_sparse(&mut out, &data).unwrap();
            write_sparse(&mut out, &tail).unwrap();
            out.set_len((4 << 20) as u64).unwrap();
        }
        let back = std::fs::read(&path).unwrap();
        assert_eq!(&back[..1 << 20], &data[..]);
        assert_eq!(&back[1 << 20..], &tail[..]);
        use std::os::unix::fs::MetadataExt;
        let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(allocated < (1 << 20), "{allocated} bytes allocated");
    }
}
