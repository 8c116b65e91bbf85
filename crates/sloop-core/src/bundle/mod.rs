//! Bundles: the portable form of a machine. The certified base it stands on, named by SHA-512
//! and by who endorsed it, plus only the user's changes (a compressed qcow2 overlay), with a
//! manifest signed by the user's grid identity. One format for sharing, grid runs and tutorials;
//! docs/bundle-format.md describes it for outsiders.
//!
//! A bundle never holds a private key or a proxy: the manifest has no place for one, the
//! machine's secrets live in a memory-only folder in the guest, and a machine made from a bundle
//! gets fresh keys and a new instance id.

pub mod archive;
pub mod format;
pub mod overlay;
pub mod sign;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha512};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

pub use format::BundleManifest;
pub use sign::{SignatureProblem, SignerView, SigningIdentity};

use crate::config::Config;
use crate::image::{ImageView, LocalState};
use crate::paths::Paths;
use crate::progress::{Meter, ProgressUnit, Reporter};
use archive::{ArchiveProblem, Members, ScanError};
use format::ManifestProblem;
use overlay::{CheckError, OverlayProblem};

/// A bundle could not be made, read or used. Refusals name the bundle, the member and the check.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {file}: {problem}")]
    Archive {
        file: PathBuf,
        problem: ArchiveProblem,
    },
    #[error("cannot read bundle {file}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bundle {file}: manifest.json: {problem}")]
    Manifest {
        file: PathBuf,
        problem: ManifestProblem,
    },
    #[error("bundle {file}: manifest.json.p7s: {problem}")]
    Signature {
        file: PathBuf,
        problem: Box<SignatureProblem>,
    },
    #[error(
        "bundle {file} is not signed, so nobody vouches for it; import it only if you trust where it came from: --allow-unsigned"
    )]
    Unsigned { file: PathBuf },
    #[error(
        "bundle {file} is signed by {identity}, from whom you have not imported before; if you trust them, import with --trust-signer"
    )]
    NewSigner { file: PathBuf, identity: String },
    #[error("bundle {file}: overlay.qcow2 {problem}")]
    Overlay {
        file: PathBuf,
        problem: OverlayProblem,
    },
    #[error("bundle {file}: overlay.qcow2 does not match the manifest: {what}")]
    OverlayMismatch { file: PathBuf, what: &'static str },
    #[error(
        "the base image {} (SHA-512 {}…) is not certified here; subscribe to its list and try again: sloop catalog add {} (list {}, endorsed by {})",
        .0.title, .0.short, .0.url, .0.identifier, .0.endorser
    )]
    BaseNotCertified(Box<BaseNeeded>),
    #[error("machine {0} is running; stop it first (sloop machine stop {0}) or export with --stop")]
    Running(String),
    #[error(
        "machine {machine}'s base image {title} has no record of where it came from in the image store; pull it again (sloop image pull {short})"
    )]
    NoProvenance {
        machine: String,
        title: String,
        short: String,
    },
    #[error("{0} exists already; choose another file or remove it first")]
    OutputExists(PathBuf),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sign(#[from] sign::SignError),
    #[error(transparent)]
    Machine(#[from] crate::machine::MachineError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("the overlay: {0}")]
    Tool(#[source] CheckError),
    #[error("cancelled; nothing was kept")]
    Cancelled,
}

impl BundleError {
    fn overlay(file: &Path, error: CheckError) -> Self {
        match error {
            CheckError::Problem(problem) => Self::Overlay {
                file: file.to_path_buf(),
                problem,
            },
            CheckError::Cancelled => Self::Cancelled,
            other => Self::Tool(other),
        }
    }

    fn scan(file: &Path, error: ScanError) -> Self {
        match error {
            ScanError::Io(source) => Self::Read {
                file: file.to_path_buf(),
                source,
            },
            ScanError::Problem(problem) => Self::Archive {
                file: file.to_path_buf(),
                problem,
            },
        }
    }
}

/// The list a bundle's base needs, to say which to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseNeeded {
    pub title: String,
    /// The SHA-512's first 16 digits.
    pub short: String,
    pub url: String,
    pub identifier: String,
    pub endorser: String,
}

/// One check of a bundle and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct BundleCheck {
    pub ok: bool,
    /// What was found, or why it fails.
    pub detail: String,
}

impl BundleCheck {
    fn pass(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
        }
    }

    fn fail(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// What a bundle is and whether it holds, as `bundle inspect` and the app show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct BundleReport {
    pub file: String,
    /// Bytes of the bundle file.
    #[ts(type = "number")]
    pub bytes: u64,
    pub manifest: BundleManifest,
    /// Who signed it, when it is signed and the signature could be read.
    pub signer: Option<SignerView>,
    /// "derived from image X endorsed by E in list L; changed by U; signed at T".
    pub provenance: String,
    /// The signature over the manifest, against the grid trust anchors.
    pub signature: BundleCheck,
    /// The overlay's SHA-512, size and qcow2 header against the manifest.
    pub overlay: BundleCheck,
    /// The base: certified here (and stored, or which list to subscribe to).
    pub base: BundleCheck,
    /// Every check holds.
    pub verified: bool,
}

/// Reads and checks the bundle at `file`: its members' shape, the manifest, the signature, the
/// overlay (hashed in full, with progress as `verify:<file name>`) and the base. A file that is
/// not a bundle at all is an error; a bundle whose checks fail is a report saying which.
pub async fn examine(
    paths: &Paths,
    config: &Config,
    file: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<BundleReport, BundleError> {
    Ok(examined(paths, config, file, reporter, cancel).await?.0)
}

/// Like [`examine`], but the first failed check is the error: what `bundle verify` uses.
pub async fn verify(
    paths: &Paths,
    config: &Config,
    file: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<BundleReport, BundleError> {
    match examined(paths, config, file, reporter, cancel).await? {
        (_, Some(failure)) => Err(failure),
        (report, None) => Ok(report),
    }
}

/// The report, and the first check that failed as an error.
async fn examined(
    paths: &Paths,
    config: &Config,
    file: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<(BundleReport, Option<BundleError>), BundleError> {
    let now = OffsetDateTime::now_utc();
    let opened = open(file)?;
    let manifest = &opened.manifest;
    let mut failures = Vec::new();
    let mut failed = |error: BundleError| {
        let check = BundleCheck::fail(error.to_string());
        failures.push(error);
        check
    };
    let (signer, signature) = match check_signature(&opened, &config.ca_dir(), now) {
        Ok(view) => (
            Some(view.clone()),
            BundleCheck::pass(format!("signed by {}", view.identity)),
        ),
        Err(error @ (BundleError::Unsigned { .. } | BundleError::Signature { .. })) => {
            (None, failed(error))
        }
        Err(other) => return Err(other),
    };
    let task = format!(
        "verify:{}",
        file.file_name().unwrap_or_default().to_string_lossy()
    );
    let digest = hash_member(file, opened.members.overlay, &task, reporter, cancel).await?;
    let mismatch = |what| BundleError::OverlayMismatch {
        file: file.to_path_buf(),
        what,
    };
    let overlay = if digest.sha512 != manifest.overlay.sha512 {
        failed(mismatch("its SHA-512 differs: the overlay was changed"))
    } else if digest.len != manifest.overlay.size {
        failed(mismatch("its size differs"))
    } else {
        match overlay::check(
            overlay::Location::Member(file, opened.members.overlay),
            manifest.overlay_backing(),
            manifest.overlay.virtual_size,
        )
        .await
        {
            Ok(()) => BundleCheck::pass(format!(
                "SHA-512 and size match; qcow2, {} compressed, {}",
                manifest.overlay.compression,
                match manifest.layout {
                    crate::machine::DiskLayout::Overlay => "names only its base",
                    crate::machine::DiskLayout::LiveCd =>
                        "the disk of a machine booted from its ISO, naming no other file",
                }
            )),
            Err(error @ CheckError::Problem(_)) => failed(BundleError::overlay(file, error)),
            Err(other) => return Err(BundleError::overlay(file, other)),
        }
    };
    let base = match base_here(paths, config, manifest, now) {
        Ok(image) => BundleCheck::pass(match image.local {
            LocalState::Stored { .. } => format!(
                "certified here by list {}; in the image store",
                manifest.base.list.identifier
            ),
            _ => format!(
                "certified here by list {}; not downloaded yet (import pulls it)",
                manifest.base.list.identifier
            ),
        }),
        Err(error @ BundleError::BaseNotCertified(_)) => failed(error),
        Err(other) => return Err(other),
    };
    let verified = signature.ok && overlay.ok && base.ok;
    let report = BundleReport {
        file: file.display().to_string(),
        bytes: opened.bytes,
        provenance: provenance(manifest, signer.as_ref().map(|s| s.identity.as_str())),
        manifest: opened.manifest.clone(),
        signer,
        signature,
        overlay,
        base,
        verified,
    };
    Ok((report, failures.into_iter().next()))
}

/// A bundle whose members have the right shape and whose manifest parses.
struct Opened {
    file: PathBuf,
    bytes: u64,
    members: Members,
    manifest: BundleManifest,
}

fn open(file: &Path) -> Result<Opened, BundleError> {
    let members = archive::scan(file).map_err(|e| BundleError::scan(file, e))?;
    let manifest =
        BundleManifest::parse(&members.manifest).map_err(|problem| BundleError::Manifest {
            file: file.to_path_buf(),
            problem,
        })?;
    let bytes = std::fs::metadata(file)
        .map_err(|source| BundleError::Read {
            file: file.to_path_buf(),
            source,
        })?
        .len();
    Ok(Opened {
        file: file.to_path_buf(),
        bytes,
        members,
        manifest,
    })
}

/// The signature's signer, or why there is none that holds.
fn check_signature(
    opened: &Opened,
    anchors: &Path,
    now: OffsetDateTime,
) -> Result<SignerView, BundleError> {
    let Some(signature) = &opened.members.signature else {
        return Err(BundleError::Unsigned {
            file: opened.file.clone(),
        });
    };
    let signed_at = opened
        .manifest
        .created()
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    sign::verify(&opened.members.manifest, signature, anchors, signed_at, now).map_err(|problem| {
        BundleError::Signature {
            file: opened.file.clone(),
            problem: Box::new(problem),
        }
    })
}

/// "derived from image X endorsed by E in list L; changed by U; signed at T".
pub fn provenance(manifest: &BundleManifest, signer: Option<&str>) -> String {
    let base = &manifest.base;
    let changed = match signer {
        Some(identity) => format!("changed by {identity}; signed at {}", manifest.created_at),
        None => format!(
            "changed by an unknown person (not signed); made at {}",
            manifest.created_at
        ),
    };
    format!(
        "derived from image {} endorsed by {} in list {}; {changed}",
        base.title, base.list.endorser_dn, base.list.identifier
    )
}

fn not_certified(manifest: &BundleManifest) -> BundleError {
    BundleError::BaseNotCertified(Box::new(BaseNeeded {
        title: manifest.base.title.clone(),
        short: manifest.base.sha512[..16].to_string(),
        url: if manifest.base.list.url.is_empty() {
            "<the list's URL>".into()
        } else {
            manifest.base.list.url.clone()
        },
        identifier: manifest.base.list.identifier.clone(),
        endorser: manifest.base.list.endorser_dn.clone(),
    }))
}

/// The certified image here whose SHA-512 is the bundle's base.
fn base_here(
    paths: &Paths,
    config: &Config,
    manifest: &BundleManifest,
    now: OffsetDateTime,
) -> Result<ImageView, BundleError> {
    let images = crate::image::list(paths, config, now)?;
    images
        .into_iter()
        .filter(|i| i.sha512 == manifest.base.sha512 && i.certified)
        .max_by_key(|i| matches!(i.local, LocalState::Stored { .. }))
        .ok_or_else(|| not_certified(manifest))
}

/// The SHA-512 and length of a stream, read to its end.
struct Digest {
    sha512: String,
    len: u64,
}

/// Hashes the overlay member, with progress, off the async threads.
async fn hash_member(
    file: &Path,
    span: archive::Span,
    task: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Digest, BundleError> {
    let reader = archive::overlay_reader(file, span).map_err(|source| BundleError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let (task, reporter, cancel) = (task.to_string(), reporter.clone(), cancel.clone());
    let reader_file = file.to_path_buf();
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut meter = Meter::new(
            &task,
            "checking the overlay",
            Some(span.len),
            ProgressUnit::Bytes,
        );
        copy_hashing(reader, std::io::sink(), &mut meter, &reporter, &cancel).map_err(|e| {
            if cancel.is_cancelled() {
                BundleError::Cancelled
            } else {
                BundleError::Read { file, source: e }
            }
        })
    })
    .await
    .map_err(|e| BundleError::Read {
        file: reader_file,
        source: std::io::Error::other(e.to_string()),
    })?
}

/// Copies `from` into `to`, hashing, reporting and stopping when cancelled.
fn copy_hashing(
    mut from: impl Read,
    mut to: impl Write,
    meter: &mut Meter,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> std::io::Result<Digest> {
    let mut hasher = Sha512::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut len = 0u64;
    meter.update(reporter, 0, true);
    loop {
        if cancel.is_cancelled() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "cancelled",
            ));
        }
        let read = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..read]);
        to.write_all(&buffer[..read])?;
        len += read as u64;
        meter.update(reporter, len, false);
    }
    to.flush()?;
    meter.update(reporter, len, true);
    Ok(Digest {
        sha512: hex::encode(hasher.finalize()),
        len,
    })
}

/// A private scratch folder under `data/tmp/`, removed when dropped. Its name starts with the
/// process id, so that one left by a killed Sloop is recognised and cleared by the next.
fn scratch(paths: &Paths) -> std::io::Result<tempfile::TempDir> {
    let root = paths.data_dir.join("tmp");
    crate::paths::ensure_private_dir(&root)?;
    clear_abandoned(&root);
    tempfile::Builder::new()
        .prefix(&format!("{}-", std::process::id()))
        .tempdir_in(&root)
}

/// Removes scratch folders whose process is gone.
fn clear_abandoned(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!(folder = %entry.path().display(), "clearing an abandoned scratch folder");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Where a machine comes from, as its detail view shows it: the certified base and who endorsed
/// it, and for an imported machine who changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct MachineProvenance {
    pub machine: String,
    pub base_title: String,
    pub base_sha512: String,
    /// From the image store's record of the pull; `None` when it has none.
    pub endorser_dn: Option<String>,
    pub list_identifier: Option<String>,
    /// The bundle it was imported from; `None` for a machine made here.
    pub bundle: Option<String>,
    /// Who signed that bundle; `None` when made here or unsigned.
    pub changed_by: Option<String>,
    /// When that bundle was made and signed.
    pub signed_at: Option<String>,
    pub note: Option<String>,
    /// The one-line summary.
    pub summary: String,
}

/// Machine `name`'s provenance.
pub fn machine_provenance(
    paths: &Paths,
    name: &crate::machine::MachineName,
) -> Result<MachineProvenance, BundleError> {
    let manifest = crate::machine::load(paths, name)?;
    let origin = crate::image::Store::new(paths).provenance(&manifest.base.sha512);
    let endorser_dn = origin.as_ref().map(|o| o.endorser_dn.clone());
    let list_identifier = origin.as_ref().map(|o| o.list_identifier.clone());
    let mut summary = format!(
        "derived from image {} endorsed by {} in list {}",
        manifest.base.title,
        endorser_dn.as_deref().unwrap_or("(unknown endorser)"),
        list_identifier.as_deref().unwrap_or("(unknown list)")
    );
    match &manifest.origin {
        Some(o) => summary.push_str(&format!(
            "; changed by {}; signed at {}; imported from {}",
            o.signed_by
                .as_deref()
                .unwrap_or("an unknown person (not signed)"),
            o.created_at,
            o.bundle
        )),
        None => summary.push_str("; made on this computer"),
    }
    Ok(MachineProvenance {
        machine: manifest.name.to_string(),
        base_title: manifest.base.title.clone(),
        base_sha512: manifest.base.sha512.clone(),
        endorser_dn,
        list_identifier,
        bundle: manifest.origin.as_ref().map(|o| o.bundle.clone()),
        changed_by: manifest.origin.as_ref().and_then(|o| o.signed_by.clone()),
        signed_at: manifest.origin.as_ref().map(|o| o.created_at.clone()),
        note: manifest
            .origin
            .as_ref()
            .map(|o| o.note.clone())
            .filter(|n| !n.is_empty()),
        summary,
    })
}

/// The identities whose bundles the user has imported (`data/signers.json`), by DN.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KnownSigners {
    identities: Vec<String>,
}

fn signers_file(paths: &Paths) -> PathBuf {
    paths.data_dir.join("signers.json")
}

fn known_signers(paths: &Paths) -> KnownSigners {
    std::fs::read(signers_file(paths))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn remember_signer(paths: &Paths, identity: &str) -> std::io::Result<()> {
    let mut known = known_signers(paths);
    if known.identities.iter().any(|i| i == identity) {
        return Ok(());
    }
    known.identities.push(identity.to_string());
    known.identities.sort();
    let bytes = serde_json::to_vec_pretty(&known).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&signers_file(paths), &bytes, 0o644)
}

pub mod export;
pub mod import;

/// Who signed the bundle at `file` (checked against `anchors`) and the SHA-512 of the base it is
/// built on. An unsigned bundle, or one whose signature does not hold, is the error.
pub fn signer_and_base(
    file: &Path,
    anchors: &Path,
    now: OffsetDateTime,
) -> Result<(String, String), BundleError> {
    let opened = open(file)?;
    let signer = check_signature(&opened, anchors, now)?;
    Ok((signer.identity, opened.manifest.base.sha512))
}
