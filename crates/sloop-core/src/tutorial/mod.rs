//! Tutorials: one file gives every student the same machine and material, offline too.
//!
//! A tutorial file ([`format`]) pins a catalog (list identifier and endorser), an image (SHA-512),
//! the trainer's signed bundle and the material by digest. Opening it subscribes to the list
//! (verified as any other), pulls the image, checks the bundle's signer, unpacks the material into
//! a work directory of the tutorial's own and makes the machine: every student starts from
//! byte-identical inputs. Each file is read from the mirror beside the tutorial file first (a
//! USB stick, a share on the venue's server), then from where the trainer published it.
//!
//! What a student has of a tutorial lives under `data/tutorials/<name>/`: the verified tutorial
//! file (`tutorial.toml`), `record.json` (where it came from, what was set aside), the verified
//! copies of the bundle and material (so that "reset to start" needs no network), the list's
//! own anchor when it has one (`ca/`), and the work directory (`work/`, at /analysis in the
//! machine). Reset moves `work/` aside as `work-<time>/`; nothing of the student's is deleted.

pub mod format;
pub mod material;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha512};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use crate::catalog::{self, AddRequest, CatalogError, Pins};
use crate::config::Config;
use crate::paths::{Paths, ensure_private_dir};
use crate::progress::{Meter, ProgressUnit, Reporter};
pub use format::{FormatProblem, Tutorial};
pub use material::MaterialError;

/// Why a tutorial cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TutorialError {
    #[error("tutorial file {location}: {problem}")]
    Format {
        location: String,
        problem: FormatProblem,
    },
    #[error("cannot read tutorial file {location}: {reason}")]
    Read { location: String, reason: String },
    #[error("cannot get the tutorial's {what}: {tried}")]
    Unreachable { what: &'static str, tried: String },
    #[error("the tutorial's {what} refused: {reason}")]
    Refused { what: &'static str, reason: String },
    #[error(
        "the tutorial's bundle is signed by {signer}, but the tutorial names {pinned}; ask the trainer for the right file"
    )]
    ForeignSigner { signer: String, pinned: String },
    #[error(
        "the tutorial's bundle is built on another image ({found}…) than the tutorial names ({pinned}…); the tutorial file is inconsistent"
    )]
    OtherBase { found: String, pinned: String },
    #[error(
        "tutorial {name} is open here already from another version of its file; open it with --replace (Open the new version in the app) to make its machine anew from this file: your work directory is moved aside"
    )]
    OtherVersion { name: String },
    #[error(
        "a machine named {name} exists and is not tutorial {name}'s; rename or delete that machine first"
    )]
    MachineTaken { name: String },
    #[error("no tutorial named {0} here; open its file first (sloop tutorial open FILE)")]
    NotFound(String),
    #[error(transparent)]
    Material(#[from] MaterialError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} exists already; choose another name (nothing is overwritten)")]
    Exists(PathBuf),
    #[error("machine {machine} cannot make a tutorial: {reason}")]
    Machine { machine: String, reason: String },
    #[error("cancelled; nothing of the tutorial was kept")]
    Cancelled,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TutorialError + '_ {
    move |source| TutorialError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a tutorial file was read from; relative names in it are read from beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Url(url::Url),
}

impl Origin {
    /// A path, `file://` URL or http(s) URL as the user gave it.
    pub fn parse(location: &str) -> Result<Self, TutorialError> {
        let bad = |reason: &str| TutorialError::Read {
            location: location.to_string(),
            reason: reason.to_string(),
        };
        if location.starts_with("https://") || location.starts_with("http://") {
            return url::Url::parse(location)
                .map(Self::Url)
                .map_err(|e| bad(&e.to_string()));
        }
        if location.starts_with("file:") {
            return url::Url::parse(location)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .map(Self::File)
                .ok_or_else(|| bad("not a file:// address of this computer"));
        }
        if location.contains("://") {
            return Err(bad("only https, http and file addresses are read"));
        }
        std::path::absolute(location)
            .map(Self::File)
            .map_err(|e| bad(&e.to_string()))
    }

    fn text(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Url(url) => url.to_string(),
        }
    }

    /// Where `name` is when it is written relative to the tutorial file.
    fn beside(&self, name: &str) -> Option<String> {
        match self {
            Self::File(path) => path.parent().map(|d| d.join(name).display().to_string()),
            Self::Url(url) => url.join(name).ok().map(|u| u.to_string()),
        }
    }

    /// Where a file is looked for, in order: its mirror copy beside the tutorial file, then its
    /// source (a URL, an absolute path, or a path beside the tutorial file).
    fn candidates(&self, mirror: Option<&str>, source: &str) -> Vec<String> {
        let mut out: Vec<String> = mirror.and_then(|m| self.beside(m)).into_iter().collect();
        let source = if source.contains("://") || source.starts_with('/') {
            Some(source.to_string())
        } else {
            self.beside(source)
        };
        out.extend(source.filter(|s| !out.contains(s)));
        // A tutorial from the network names nothing on this computer.
        if let Self::Url(_) = self {
            out.retain(|c| c.starts_with("https://") || c.starts_with("http://"));
        }
        out
    }
}

/// A tutorial file read and checked, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub tutorial: Tutorial,
    pub origin: Origin,
}

/// Reads the tutorial file at `location` (a path or URL) and checks it.
pub async fn load(location: &str, anchors: &Path) -> Result<Loaded, TutorialError> {
    let origin = Origin::parse(location)?;
    let bad = |reason: String| TutorialError::Read {
        location: origin.text(),
        reason,
    };
    let bytes = match &origin {
        Origin::File(path) => {
            let len = std::fs::metadata(path)
                .map_err(|e| bad(e.to_string()))?
                .len();
            if len > format::MAX_BYTES {
                return Err(bad(format!(
                    "{len} bytes is too large for a tutorial file (at most {})",
                    format::MAX_BYTES
                )));
            }
            std::fs::read(path).map_err(|e| bad(e.to_string()))?
        }
        Origin::Url(url) => {
            let (bytes, _, _) = download(
                url.as_str(),
                anchors,
                Some(format::MAX_BYTES),
                Sink::Memory,
                None,
            )
            .await?;
            bytes
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| bad("it is not UTF-8 text".into()))?;
    let tutorial = Tutorial::parse(&text).map_err(|problem| TutorialError::Format {
        location: origin.text(),
        problem,
    })?;
    Ok(Loaded { tutorial, origin })
}

/// Where downloaded bytes go.
enum Sink<'a> {
    Memory,
    File(&'a mut std::fs::File),
    /// Only hashed (a check).
    Discard,
}

/// An HTTP(S) GET, read to its end (into memory when `sink` is `None`), stopping past `limit`
/// bytes. Returns the bytes kept in memory, and the SHA-512 and length of all of them.
async fn download(
    url: &str,
    anchors: &Path,
    limit: Option<u64>,
    mut sink: Sink<'_>,
    mut meter: Option<(&mut Meter, &Reporter, &CancellationToken)>,
) -> Result<(Vec<u8>, String, u64), TutorialError> {
    let fail = |reason: String| TutorialError::Read {
        location: url.to_string(),
        reason,
    };
    let client = crate::http::client(anchors).map_err(|e| fail(crate::error_chain(&e)))?;
    let response = client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| fail(crate::error_chain(&e)))?;
    let mut stream = response.bytes_stream();
    let mut kept = Vec::new();
    let mut hasher = Sha512::new();
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fail(crate::error_chain(&e)))?;
        len += chunk.len() as u64;
        if limit.is_some_and(|limit| len > limit) {
            return Err(fail(format!(
                "it is larger than the {} bytes expected",
                limit.unwrap_or_default()
            )));
        }
        hasher.update(&chunk);
        match &mut sink {
            Sink::File(file) => file.write_all(&chunk).map_err(|e| fail(e.to_string()))?,
            Sink::Memory => kept.extend_from_slice(&chunk),
            Sink::Discard => {}
        }
        if let Some((meter, reporter, cancel)) = meter.as_mut() {
            if cancel.is_cancelled() {
                return Err(TutorialError::Cancelled);
            }
            meter.update(reporter, len, false);
        }
    }
    Ok((kept, hex::encode(hasher.finalize()), len))
}

/// What fetching a pinned file needs besides the pin.
struct Fetch<'a> {
    anchors: &'a Path,
    pub reporter: &'a Reporter,
    pub task: &'a str,
    pub cancel: &'a CancellationToken,
}

/// Brings the file `pin` names to `dest` (or only hashes it when `dest` is `None`), trying each
/// candidate in turn; only bytes of the pinned size and SHA-512 are kept. Returns where they came
/// from.
async fn fetch_pinned(
    what: &'static str,
    candidates: &[String],
    sha512: &str,
    size: u64,
    dest: Option<&Path>,
    fetch: &Fetch<'_>,
) -> Result<String, TutorialError> {
    let mut tried = Vec::new();
    for candidate in candidates {
        match fetch_one(candidate, sha512, size, dest, what, fetch).await {
            Ok(()) => return Ok(candidate.clone()),
            Err(TutorialError::Cancelled) => return Err(TutorialError::Cancelled),
            Err(e) => {
                tracing::info!(what, candidate, "not used: {e}");
                tried.push(format!("{candidate}: {}", crate::error_chain(&e)));
            }
        }
    }
    Err(TutorialError::Unreachable {
        what,
        tried: if tried.is_empty() {
            "it names no location".into()
        } else {
            tried.join("; ")
        },
    })
}

async fn fetch_one(
    location: &str,
    sha512: &str,
    size: u64,
    dest: Option<&Path>,
    what: &'static str,
    fetch: &Fetch<'_>,
) -> Result<(), TutorialError> {
    let partial = dest.map(|d| {
        let mut name = d.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        d.with_file_name(name)
    });
    let mut meter = Meter::new(
        fetch.task,
        &format!("getting the {what}"),
        Some(size),
        ProgressUnit::Bytes,
    );
    let result = async {
        let mut out = match &partial {
            Some(p) => Some(std::fs::File::create(p).map_err(io(p))?),
            None => None,
        };
        let digest = if location.contains("://") && !location.starts_with("file:") {
            let triple = (&mut meter, fetch.reporter, fetch.cancel);
            let sink = match out.as_mut() {
                Some(file) => Sink::File(file),
                None => Sink::Discard,
            };
            let (_, sha512, len) =
                download(location, fetch.anchors, Some(size), sink, Some(triple)).await?;
            (sha512, len)
        } else {
            let Origin::File(path) = Origin::parse(location)? else {
                return Err(TutorialError::Read {
                    location: location.to_string(),
                    reason: "not a file on this computer".into(),
                });
            };
            let (reporter, cancel) = (fetch.reporter.clone(), fetch.cancel.clone());
            tokio::task::spawn_blocking(move || {
                copy_hashing(&path, Some(size), out, &mut meter, &reporter, &cancel)
            })
            .await
            .map_err(|e| TutorialError::Read {
                location: location.to_string(),
                reason: e.to_string(),
            })??
        };
        if digest.1 != size {
            return Err(TutorialError::Refused {
                what,
                reason: format!("{location} is {} bytes, the tutorial says {size}", digest.1),
            });
        }
        if digest.0 != sha512 {
            return Err(TutorialError::Refused {
                what,
                reason: format!("{location} does not have the SHA-512 the tutorial pins"),
            });
        }
        Ok(())
    }
    .await;
    match (&result, &partial, dest) {
        (Ok(()), Some(p), Some(d)) => std::fs::rename(p, d).map_err(io(d))?,
        (Err(_), Some(p), _) => {
            let _ = std::fs::remove_file(p);
        }
        _ => {}
    }
    result
}

/// Copies (or only reads) a local file, hashing it; its SHA-512 and length.
fn copy_hashing(
    path: &Path,
    limit: Option<u64>,
    mut out: Option<std::fs::File>,
    meter: &mut Meter,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<(String, u64), TutorialError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    // A device or a pipe named as a source would never end: regular files only, and never more
    // than one byte past the pinned size.
    if !file.metadata().map_err(io(path))?.is_file() {
        return Err(TutorialError::Read {
            location: path.display().to_string(),
            reason: "not a regular file".into(),
        });
    }
    let mut file = file.take(limit.map_or(u64::MAX, |l| l + 1));
    let mut hasher = Sha512::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(TutorialError::Cancelled);
        }
        let n = file.read(&mut buffer).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        if let Some(out) = out.as_mut() {
            out.write_all(&buffer[..n]).map_err(io(path))?;
        }
        len += n as u64;
        meter.update(reporter, len, false);
    }
    if let Some(out) = out.as_mut() {
        out.sync_all().map_err(io(path))?;
    }
    meter.update(reporter, len, true);
    Ok((hex::encode(hasher.finalize()), len))
}

/// The signed list, from the first candidate that passes every check with the tutorial's pins.
/// Returns its bytes and where they came from.
async fn fetch_list(
    loaded: &Loaded,
    anchors: &Path,
    require_crl: bool,
    now: OffsetDateTime,
) -> Result<(Vec<u8>, String), TutorialError> {
    let pin = &loaded.tutorial.catalog;
    let pins = Pins {
        identifier: Some(&pin.identifier),
        endorser_dn: Some(&pin.endorser_dn),
        endorser_ca: Some(&pin.endorser_ca),
        require_crl,
    };
    let mut tried = Vec::new();
    for candidate in loaded.origin.candidates(pin.mirror.as_deref(), &pin.source) {
        let read = match catalog::Source::parse(&candidate) {
            Ok(source) => catalog::fetch(&source, anchors).await,
            Err(e) => Err(e),
        };
        let refusal = match read {
            Ok(signed) => match catalog::accept(&signed, anchors, &pins, now) {
                Ok(_) => return Ok((signed, candidate)),
                Err(refusal) => refusal.to_string(),
            },
            Err(e) => crate::error_chain(&e),
        };
        tried.push(format!("{candidate}: {refusal}"));
    }
    Err(TutorialError::Unreachable {
        what: "image list",
        tried: tried.join("; "),
    })
}

/// The last part of a path or URL, when it is a plain file name: what a mirror calls its copy,
/// so that a relative source and the mirror copy are the same file.
fn file_name_of(source: &str) -> Option<String> {
    source
        .rsplit('/')
        .next()
        .filter(|n| format::is_plain_name(n))
        .map(str::to_string)
}

/// Installs the CA certificates of a tutorial's `catalog.anchor` (PEM, one or more) as trust
/// anchors in folder `dir`, for its list alone.
fn install_anchors(pem: &str, dir: &Path) -> Result<(), TutorialError> {
    let refused = |reason: String| TutorialError::Refused {
        what: "catalog anchor",
        reason,
    };
    ensure_private_dir(dir).map_err(io(dir))?;
    let certificates =
        openssl::x509::X509::stack_from_pem(pem.as_bytes()).map_err(|e| refused(e.to_string()))?;
    if certificates.is_empty() {
        return Err(refused("it holds no certificate".into()));
    }
    for certificate in certificates {
        crate::pki::install_anchor(dir, &certificate).map_err(|e| refused(e.to_string()))?;
    }
    Ok(())
}

/// The folder of tutorial `name` in Sloop's data.
pub fn dir(paths: &Paths, name: &str) -> PathBuf {
    paths.data_dir.join("tutorials").join(name)
}

/// What Sloop keeps of an opened tutorial (`record.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Where the tutorial file was read from.
    pub origin: String,
    /// The catalog that certifies its image here.
    pub catalog: String,
    #[serde(with = "time::serde::rfc3339")]
    pub opened: OffsetDateTime,
    /// Work directories moved aside by resets, oldest first.
    #[serde(default)]
    pub set_aside: Vec<PathBuf>,
}

/// An opened tutorial, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct TutorialView {
    pub name: String,
    pub title: String,
    /// Markdown.
    pub welcome: String,
    pub start: Option<String>,
    /// Where the file was read from.
    pub origin: String,
    /// The host folder at /analysis.
    pub work_dir: String,
    /// Work directories moved aside by resets, newest first.
    pub set_aside: Vec<String>,
    /// The trainer who signed the bundle; `None` without one.
    pub trainer: Option<String>,
}

/// An opened tutorial as kept here: its file and its record.
#[derive(Debug, Clone)]
pub struct Opened {
    pub tutorial: Tutorial,
    pub record: Record,
    pub dir: PathBuf,
}

impl Opened {
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub fn view(&self) -> TutorialView {
        let t = &self.tutorial;
        TutorialView {
            name: t.name.clone(),
            title: t.title.clone(),
            welcome: t.welcome.clone(),
            start: t.start.clone(),
            origin: self.record.origin.clone(),
            work_dir: self.work_dir().display().to_string(),
            set_aside: self
                .record
                .set_aside
                .iter()
                .rev()
                .map(|p| p.display().to_string())
                .collect(),
            trainer: t.bundle.as_ref().map(|b| b.signer.clone()),
        }
    }

    /// The verified bundle copy, when the tutorial has one.
    pub fn bundle_file(&self) -> Option<PathBuf> {
        self.tutorial
            .bundle
            .as_ref()
            .map(|_| self.dir.join("bundle.sloop"))
    }

    fn material_file(&self) -> PathBuf {
        self.dir.join("material.tar")
    }

    pub fn save_record(&self) -> Result<(), TutorialError> {
        let path = self.dir.join("record.json");
        let bytes = serde_json::to_vec_pretty(&self.record).map_err(|e| TutorialError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        crate::fsutil::write_atomic(&path, &bytes, 0o644).map_err(io(&path))
    }
}

/// Tutorial `name` as kept here; `None` when it was never opened (or its opening never finished).
pub fn find(paths: &Paths, name: &str) -> Result<Option<Opened>, TutorialError> {
    let dir = dir(paths, name);
    let record_path = dir.join("record.json");
    let record = match std::fs::read(&record_path) {
        Ok(bytes) => serde_json::from_slice::<Record>(&bytes).map_err(|e| TutorialError::Io {
            path: record_path.clone(),
            source: std::io::Error::other(e),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&record_path)(e)),
    };
    let file = dir.join("tutorial.toml");
    let text = std::fs::read_to_string(&file).map_err(io(&file))?;
    let tutorial = Tutorial::parse(&text).map_err(|problem| TutorialError::Format {
        location: file.display().to_string(),
        problem,
    })?;
    Ok(Some(Opened {
        tutorial,
        record,
        dir,
    }))
}

/// Every tutorial opened here, by name.
pub fn list(paths: &Paths) -> Vec<Opened> {
    let Ok(entries) = std::fs::read_dir(paths.data_dir.join("tutorials")) else {
        return Vec::new();
    };
    let mut out: Vec<Opened> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|name| match find(paths, &name) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(tutorial = %name, "skipped: {e}");
                None
            }
        })
        .collect();
    out.sort_by(|a, b| a.tutorial.name.cmp(&b.tutorial.name));
    out
}

/// Everything a tutorial's machine is made from, verified and here: the catalog subscribed,
/// the image in the store, the bundle and material copied into the tutorial's folder.
pub async fn prepare(
    paths: &Paths,
    config: &Config,
    loaded: &Loaded,
    reporter: &Reporter,
    cancel: &CancellationToken,
    now: OffsetDateTime,
) -> Result<Opened, TutorialError> {
    let t = &loaded.tutorial;
    let dir = dir(paths, &t.name);
    ensure_private_dir(&dir).map_err(io(&dir))?;
    let task = task_name(&t.name);
    let grid_anchors = config.ca_dir();
    let fetch = Fetch {
        anchors: &grid_anchors,
        reporter,
        task: &task,
        cancel,
    };

    // The list: trusted under the tutorial's own anchor when it brings one.
    let anchors = match &t.catalog.anchor {
        Some(pem) => {
            let ca = dir.join("ca");
            install_anchors(pem, &ca)?;
            Some(ca)
        }
        None => None,
    };
    let (catalog, subscribed) = subscribe(paths, config, loaded, anchors, now).await?;
    let checked = check_pieces(paths, config, loaded, &dir, &fetch, &catalog, now).await;
    if let Err(e) = checked {
        // A subscription made for this tutorial trusts its anchor, which goes with the tutorial.
        if subscribed && let Err(removed) = catalog::remove(paths, &catalog) {
            tracing::warn!(catalog = %catalog, "not removed: {removed}");
        }
        return Err(e);
    }
    let opened = Opened {
        tutorial: t.clone(),
        record: Record {
            origin: loaded.origin.text(),
            catalog,
            opened: now,
            set_aside: Vec::new(),
        },
        dir: dir.clone(),
    };
    // The tutorial file last: with it (and the record) the folder is an opened tutorial.
    let file = dir.join("tutorial.toml");
    crate::fsutil::write_atomic(&file, t.to_text().as_bytes(), 0o644).map_err(io(&file))?;
    opened.save_record()?;
    Ok(opened)
}

/// The image, bundle and material of a tutorial whose catalog is subscribed: each fetched (the
/// mirror first) into the store or the tutorial's folder, and checked against its pin.
async fn check_pieces(
    paths: &Paths,
    config: &Config,
    loaded: &Loaded,
    dir: &Path,
    fetch: &Fetch<'_>,
    catalog: &str,
    now: OffsetDateTime,
) -> Result<(), TutorialError> {
    let t = &loaded.tutorial;
    let (reporter, cancel) = (fetch.reporter, fetch.cancel);
    let listed = catalog::load(paths, config, catalog, now)?;
    let entry = listed
        .images
        .iter()
        .find(|i| i.sha512 == t.image.sha512 && i.size == t.image.size);
    match entry {
        Some(entry) if entry.identifier == t.image.identifier => {}
        Some(entry) => {
            return Err(TutorialError::Refused {
                what: "image",
                reason: format!(
                    "the list names it {}, the tutorial {}",
                    entry.identifier, t.image.identifier
                ),
            });
        }
        None => {
            return Err(TutorialError::Refused {
                what: "image",
                reason: format!(
                    "list {} does not certify an image of the pinned size and SHA-512",
                    t.catalog.identifier
                ),
            });
        }
    }

    // The image, from the mirror first.
    let prefer = t
        .image
        .mirror
        .as_deref()
        .and_then(|m| loaded.origin.beside(m))
        .filter(|p| !p.contains("://"))
        .map(PathBuf::from);
    crate::image::pull_preferring(
        paths,
        config,
        &t.image.sha512,
        prefer.as_deref(),
        reporter,
        cancel,
        now,
    )
    .await
    .map_err(|e| {
        if cancel.is_cancelled() {
            TutorialError::Cancelled
        } else {
            TutorialError::Refused {
                what: "image",
                reason: crate::error_chain(&e),
            }
        }
    })?;

    // The trainer's bundle: the pinned bytes, signed by the pinned trainer, on the pinned image.
    if let Some(bundle) = &t.bundle {
        let copy = dir.join("bundle.sloop");
        let candidates = loaded
            .origin
            .candidates(bundle.mirror.as_deref(), &bundle.source);
        fetch_pinned(
            "bundle",
            &candidates,
            &bundle.sha512,
            bundle.size,
            Some(&copy),
            fetch,
        )
        .await?;
        let (signer, base) =
            crate::bundle::signer_and_base(&copy, &config.ca_dir(), now).map_err(|e| {
                TutorialError::Refused {
                    what: "bundle",
                    reason: crate::error_chain(&e),
                }
            })?;
        if signer != bundle.signer {
            return Err(TutorialError::ForeignSigner {
                signer,
                pinned: bundle.signer.clone(),
            });
        }
        if base != t.image.sha512 {
            return Err(TutorialError::OtherBase {
                found: base[..16].to_string(),
                pinned: t.image.sha512[..16].to_string(),
            });
        }
    }

    // The material: the pinned archive, every member plain.
    if let Some(pin) = &t.material {
        let copy = dir.join("material.tar");
        let candidates = loaded.origin.candidates(pin.mirror.as_deref(), &pin.source);
        fetch_pinned(
            "material",
            &candidates,
            &pin.sha512,
            pin.size,
            Some(&copy),
            fetch,
        )
        .await?;
        material::check(&copy)?;
    }

    Ok(())
}

/// The catalog that certifies the tutorial's image here: one already subscribed with the same
/// pins, else a new subscription to the tutorial's list (read from its mirror first). Its name,
/// and whether it is new.
async fn subscribe(
    paths: &Paths,
    config: &Config,
    loaded: &Loaded,
    anchors: Option<PathBuf>,
    now: OffsetDateTime,
) -> Result<(String, bool), TutorialError> {
    let pin = &loaded.tutorial.catalog;
    for (name, subscription) in catalog::subscriptions(paths)? {
        let same = subscription.identifier == pin.identifier
            && subscription.endorser_dn == pin.endorser_dn
            && subscription.endorser_ca == pin.endorser_ca;
        if same {
            let view = catalog::load(paths, config, &name, now)?;
            if view
                .images
                .iter()
                .any(|i| i.sha512 == loaded.tutorial.image.sha512)
                && view.state == catalog::CatalogState::Verified
            {
                return Ok((name, false));
            }
        }
    }
    let trust = anchors.clone().unwrap_or_else(|| config.ca_dir());
    let require_crl = anchors.is_none() && config.require_crl();
    let (signed, _) = fetch_list(loaded, &trust, require_crl, now).await?;
    // The subscription follows the list where the trainer published it; a mirror is only a copy.
    let source = match loaded.origin.candidates(None, &pin.source).pop() {
        Some(s) if s.contains("://") && !s.starts_with("file:") => s,
        Some(s) => catalog::Source::parse(&s).map(|s| s.as_text()).unwrap_or(s),
        None => pin.source.clone(),
    };
    let taken: Vec<String> = catalog::subscriptions(paths)?
        .into_iter()
        .flat_map(|(name, s)| [name, s.source])
        .collect();
    let stem = catalog::name_from_title(&loaded.tutorial.name);
    let name = (1..)
        .map(|n| {
            if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            }
        })
        .find(|n| !taken.contains(n))
        .unwrap_or(stem);
    // A second tutorial on the same list at the same place: a copy keyed by the tutorial.
    let source = if taken.contains(&source) && source.contains("://") {
        format!("{source}#{name}")
    } else {
        source
    };
    let request = AddRequest {
        source: source.clone(),
        name: Some(name.clone()),
        identifier: Some(pin.identifier.clone()),
        endorser_dn: Some(pin.endorser_dn.clone()),
        endorser_ca: Some(pin.endorser_ca.clone()),
        anchors,
    };
    catalog::add_signed(paths, config, &request, source, &signed, now)?;
    Ok((name, true))
}

/// The task opening or resetting tutorial `name` runs as.
pub fn task_name(name: &str) -> String {
    format!("tutorial:{name}")
}

/// Unpacks the tutorial's material into its work directory when there is none yet (an empty
/// one without material).
pub fn fill_work_dir(opened: &Opened) -> Result<(), TutorialError> {
    let work = opened.work_dir();
    if work.exists() {
        return Ok(());
    }
    if opened.tutorial.material.is_some() {
        material::unpack(&opened.material_file(), &work)?;
    } else {
        std::fs::create_dir_all(&work).map_err(io(&work))?;
    }
    Ok(())
}

/// Removes what Sloop keeps of tutorial folder `dir` except the student's work directories
/// (`work`, `work-*`); the folder goes too when nothing else is left. For an opening that did
/// not finish, and before a tutorial is replaced by another version of its file.
pub fn discard(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "work" || name.starts_with("work-") || name.starts_with(".material-") {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(e) = removed {
            tracing::warn!(path = %path.display(), "not removed: {e}");
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Moves the work directory aside as `work-<time>` (never deleting it) and records that.
pub fn set_work_aside(opened: &mut Opened, now: OffsetDateTime) -> Result<(), TutorialError> {
    let work = opened.work_dir();
    if !work.exists() {
        return Ok(());
    }
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_default();
    let mut aside = opened.dir.join(format!("work-{stamp}"));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = opened.dir.join(format!("work-{stamp}-{n}"));
    }
    std::fs::rename(&work, &aside).map_err(io(&work))?;
    opened.record.set_aside.push(aside);
    opened.save_record()
}

/// What `tutorial create` starts from: the trainer's machine and what to say to students.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub machine: String,
    /// The tutorial file to write; the bundle (`<stem>.sloop`) and material
    /// (`<stem>-material.tar`) are written beside it. None of them may exist.
    pub output: PathBuf,
    pub material: Option<PathBuf>,
    /// The tutorial's name (the student's machine); default: the machine's.
    pub name: Option<String>,
    pub title: String,
    pub welcome: String,
    pub start: Option<String>,
}

impl CreateRequest {
    /// The files `create` writes: the tutorial, the bundle, the material.
    pub fn outputs(&self) -> (PathBuf, PathBuf, PathBuf) {
        let stem = self
            .output
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| {
                n.strip_suffix(&format!(".{}", format::EXTENSION))
                    .unwrap_or(n)
                    .to_string()
            })
            .unwrap_or_else(|| "tutorial".into());
        let beside = |name: String| self.output.with_file_name(name);
        (
            self.output.clone(),
            beside(format!("{stem}.sloop")),
            beside(format!("{stem}-material.tar")),
        )
    }
}

/// The catalog and image pins for a tutorial on machine `machine`'s base, from the image
/// store's record of its pull and the catalog it came from.
pub fn describe_base(
    paths: &Paths,
    machine: &str,
) -> Result<(format::CatalogPin, format::ImagePin, format::MachineSpec), TutorialError> {
    let refuse = |reason: String| TutorialError::Machine {
        machine: machine.to_string(),
        reason,
    };
    let name = machine
        .parse::<crate::machine::MachineName>()
        .map_err(|e| refuse(e.to_string()))?;
    let manifest =
        crate::machine::load(paths, &name).map_err(|e| refuse(crate::error_chain(&e)))?;
    let store = crate::image::Store::new(paths);
    let provenance = store.provenance(&manifest.base.sha512).ok_or_else(|| {
        refuse("its base has no record of the list that certified it; pull the image again".into())
    })?;
    let subscription = catalog::subscriptions(paths)?
        .into_iter()
        .find(|(name, _)| *name == provenance.catalog)
        .map(|(_, s)| s)
        .ok_or_else(|| {
            refuse(format!(
                "catalog {} that certified its base is no longer subscribed",
                provenance.catalog
            ))
        })?;
    // A list under a CA of its own carries that CA: students cannot get it elsewhere.
    let anchor = match &subscription.anchors {
        Some(dir) => {
            let mut pem = String::new();
            let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(io(dir))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "0"))
                .collect();
            entries.sort();
            for entry in entries {
                pem.push_str(&std::fs::read_to_string(&entry).map_err(io(&entry))?);
            }
            Some(pem)
        }
        None => None,
    };
    Ok((
        format::CatalogPin {
            source: subscription.source.clone(),
            mirror: None,
            identifier: provenance.list_identifier.clone(),
            endorser_dn: provenance.endorser_dn.clone(),
            endorser_ca: provenance.endorser_ca.clone(),
            anchor,
        },
        format::ImagePin {
            identifier: provenance.identifier.clone(),
            sha512: provenance.sha512.clone(),
            size: provenance.size,
            mirror: None,
        },
        format::MachineSpec {
            vcpus: manifest.resources.vcpus,
            memory_mib: manifest.resources.memory_mib,
            disk_gib: manifest.resources.disk_gib,
        },
    ))
}

/// The SHA-512 and size of a local file.
pub fn digest(path: &Path) -> Result<(String, u64), TutorialError> {
    let mut meter = Meter::new("digest", "hashing", None, ProgressUnit::Bytes);
    copy_hashing(
        path,
        None,
        None,
        &mut meter,
        &Reporter::silent(),
        &CancellationToken::new(),
    )
}

/// Writes `text` to a new file at `path` (refusing an existing one), whole or not at all.
pub fn write_new(path: &Path, text: &[u8]) -> Result<(), TutorialError> {
    if path.exists() {
        return Err(TutorialError::Exists(path.to_path_buf()));
    }
    crate::fsutil::write_atomic(path, text, 0o644).map_err(io(path))
}

/// How one thing a tutorial names checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CheckItem {
    pub what: String,
    pub location: String,
    pub ok: bool,
    pub detail: String,
}

/// Checks every location a tutorial names (mirror copies and sources): each must be reachable
/// and match its pin. Nothing is kept.
pub async fn check(
    config: &Config,
    loaded: &Loaded,
    reporter: &Reporter,
    cancel: &CancellationToken,
    now: OffsetDateTime,
) -> Result<Vec<CheckItem>, TutorialError> {
    let t = &loaded.tutorial;
    let scratch = tempfile::tempdir().map_err(io(Path::new("/tmp")))?;
    let anchors = match &t.catalog.anchor {
        Some(pem) => {
            let ca = scratch.path().join("ca");
            install_anchors(pem, &ca)?;
            ca
        }
        None => config.ca_dir(),
    };
    let task = task_name(&t.name);
    let grid_anchors = config.ca_dir();
    let fetch = Fetch {
        anchors: &grid_anchors,
        reporter,
        task: &task,
        cancel,
    };
    let mut items = Vec::new();
    let mut item = |what: &str, location: &str, result: Result<String, String>| {
        items.push(CheckItem {
            what: what.to_string(),
            location: location.to_string(),
            ok: result.is_ok(),
            detail: result.unwrap_or_else(|e| e),
        });
    };
    let pins = Pins {
        identifier: Some(&t.catalog.identifier),
        endorser_dn: Some(&t.catalog.endorser_dn),
        endorser_ca: Some(&t.catalog.endorser_ca),
        require_crl: t.catalog.anchor.is_none() && config.require_crl(),
    };
    let mut listed_uri = None;
    for candidate in loaded
        .origin
        .candidates(t.catalog.mirror.as_deref(), &t.catalog.source)
    {
        let read = match catalog::Source::parse(&candidate) {
            Ok(source) => catalog::fetch(&source, &anchors).await,
            Err(e) => Err(e),
        };
        let result = match read {
            Err(e) => Err(crate::error_chain(&e)),
            Ok(signed) => match catalog::accept(&signed, &anchors, &pins, now) {
                Err(refusal) => Err(refusal.to_string()),
                Ok(accepted) => match accepted
                    .list
                    .images
                    .iter()
                    .find(|i| i.sha512 == t.image.sha512 && i.size == t.image.size)
                {
                    Some(image) => {
                        listed_uri = Some(image.uri.clone());
                        Ok(format!(
                            "verified, signed by {}, lists the image",
                            accepted.signer.subject
                        ))
                    }
                    None => Err("verified, but it does not list the pinned image".into()),
                },
            },
        };
        item("image list", &candidate, result);
    }
    let mut image_candidates: Vec<String> = t
        .image
        .mirror
        .as_deref()
        .and_then(|m| loaded.origin.beside(m))
        .into_iter()
        .collect();
    image_candidates.extend(listed_uri);
    for candidate in image_candidates {
        let result = fetch_one(
            &candidate,
            &t.image.sha512,
            t.image.size,
            None,
            "image",
            &fetch,
        )
        .await;
        item(
            "image",
            &candidate,
            result
                .map(|()| "matches".into())
                .map_err(|e| crate::error_chain(&e)),
        );
    }
    if let Some(bundle) = &t.bundle {
        for candidate in loaded
            .origin
            .candidates(bundle.mirror.as_deref(), &bundle.source)
        {
            let copy = scratch.path().join("bundle.sloop");
            let result = match fetch_one(
                &candidate,
                &bundle.sha512,
                bundle.size,
                Some(&copy),
                "bundle",
                &fetch,
            )
            .await
            {
                Err(e) => Err(crate::error_chain(&e)),
                Ok(()) => match crate::bundle::signer_and_base(&copy, &grid_anchors, now) {
                    Err(e) => Err(crate::error_chain(&e)),
                    Ok((signer, _)) if signer != bundle.signer => {
                        Err(format!("signed by {signer}, not by {}", bundle.signer))
                    }
                    Ok(_) => Ok(format!("matches, signed by {}", bundle.signer)),
                },
            };
            let _ = std::fs::remove_file(&copy);
            item("bundle", &candidate, result);
        }
    }
    if let Some(pin) = &t.material {
        for candidate in loaded.origin.candidates(pin.mirror.as_deref(), &pin.source) {
            let copy = scratch.path().join("material.tar");
            let result = match fetch_one(
                &candidate,
                &pin.sha512,
                pin.size,
                Some(&copy),
                "material",
                &fetch,
            )
            .await
            {
                Err(e) => Err(crate::error_chain(&e)),
                Ok(()) => material::check(&copy)
                    .map(|n| format!("matches, {n} files and folders"))
                    .map_err(|e| e.to_string()),
            };
            let _ = std::fs::remove_file(&copy);
            item("material", &candidate, result);
        }
    }
    Ok(items)
}

/// Writes an offline mirror of the tutorial into `target` (which must not exist, or be empty):
/// the signed list, the image, the bundle, the material, and the tutorial file rewritten to
/// find each beside itself. Written into a scratch folder beside `target` and renamed at the
/// end, so a failure leaves no half-made mirror. Returns the mirror's tutorial file.
pub async fn mirror(
    paths: &Paths,
    config: &Config,
    loaded: &Loaded,
    target: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
    now: OffsetDateTime,
) -> Result<PathBuf, TutorialError> {
    if target.exists() {
        let empty = std::fs::read_dir(target)
            .map_err(io(target))?
            .next()
            .is_none();
        // An empty folder is replaced at the end (rename takes its place), not before.
        if !empty {
            return Err(TutorialError::Exists(target.to_path_buf()));
        }
    }
    let parent = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".sloop-mirror-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let out = staging.path();
    let mut t = loaded.tutorial.clone();
    let task = task_name(&t.name);
    let grid_anchors = config.ca_dir();
    let fetch = Fetch {
        anchors: &grid_anchors,
        reporter,
        task: &task,
        cancel,
    };

    // The list: from where the tutorial says, else the copy a subscription here keeps.
    let anchors_dir = tempfile::tempdir().map_err(io(Path::new("/tmp")))?;
    let anchors = match &t.catalog.anchor {
        Some(pem) => {
            install_anchors(pem, anchors_dir.path())?;
            anchors_dir.path().to_path_buf()
        }
        None => config.ca_dir(),
    };
    let require_crl = t.catalog.anchor.is_none() && config.require_crl();
    let signed = match fetch_list(loaded, &anchors, require_crl, now).await {
        Ok((signed, _)) => signed,
        Err(unreachable) => {
            let pins = Pins {
                identifier: Some(&t.catalog.identifier),
                endorser_dn: Some(&t.catalog.endorser_dn),
                endorser_ca: Some(&t.catalog.endorser_ca),
                require_crl,
            };
            let here = catalog::subscriptions(paths)?
                .into_iter()
                .filter_map(|(name, _)| {
                    std::fs::read(catalog::catalogs_dir(paths).join(name).join("list.smime")).ok()
                })
                .find(|signed| catalog::accept(signed, &anchors, &pins, now).is_ok());
            here.ok_or(unreachable)?
        }
    };
    let trusted = Pins {
        require_crl,
        ..Pins::default()
    };
    let accepted =
        catalog::accept(&signed, &anchors, &trusted, now).map_err(|r| TutorialError::Refused {
            what: "image list",
            reason: r.to_string(),
        })?;
    let list_name = format!("{}.image_list", t.name);
    std::fs::write(out.join(&list_name), &signed).map_err(io(out))?;
    t.catalog.mirror = Some(list_name);

    // The image: from the store here, else from the mirror or the list.
    let listed = accepted
        .list
        .images
        .iter()
        .find(|i| i.sha512 == t.image.sha512)
        .ok_or_else(|| TutorialError::Refused {
            what: "image list",
            reason: "it does not list the tutorial's image".into(),
        })?;
    let image_name = listed
        .uri
        .rsplit('/')
        .next()
        .filter(|n| format::is_plain_name(n) && !n.ends_with(".image_list"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}.img", &t.image.sha512[..16]));
    let mut candidates: Vec<String> = crate::image::Store::new(paths)
        .stored(&t.image.sha512)
        .map(|p| p.display().to_string())
        .into_iter()
        .collect();
    candidates.extend(
        loaded
            .origin
            .candidates(t.image.mirror.as_deref(), &listed.uri),
    );
    fetch_pinned(
        "image",
        &candidates,
        &t.image.sha512,
        t.image.size,
        Some(&out.join(&image_name)),
        &fetch,
    )
    .await?;
    t.image.mirror = Some(image_name);

    if let Some(bundle) = t.bundle.as_mut() {
        let name = file_name_of(&bundle.source).unwrap_or_else(|| format!("{}.sloop", t.name));
        let candidates = loaded
            .origin
            .candidates(bundle.mirror.as_deref(), &bundle.source);
        fetch_pinned(
            "bundle",
            &candidates,
            &bundle.sha512,
            bundle.size,
            Some(&out.join(&name)),
            &fetch,
        )
        .await?;
        bundle.mirror = Some(name);
    }
    if let Some(pin) = t.material.as_mut() {
        let name = file_name_of(&pin.source).unwrap_or_else(|| format!("{}-material.tar", t.name));
        let candidates = loaded.origin.candidates(pin.mirror.as_deref(), &pin.source);
        fetch_pinned(
            "material",
            &candidates,
            &pin.sha512,
            pin.size,
            Some(&out.join(&name)),
            &fetch,
        )
        .await?;
        material::check(&out.join(&name))?;
        pin.mirror = Some(name);
    }
    let file = out.join(format!("{}.{}", t.name, format::EXTENSION));
    std::fs::write(&file, t.to_text()).map_err(io(&file))?;
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(io(out))?;
    let kept = staging.keep();
    std::fs::rename(&kept, target).map_err(|source| {
        let _ = std::fs::remove_dir_all(&kept);
        TutorialError::Io {
            path: target.to_path_buf(),
            source,
        }
    })?;
    Ok(target.join(format!("{}.{}", t.name, format::EXTENSION)))
}
