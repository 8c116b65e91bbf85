//! Images: the catalogs' images joined with what is on this computer, and pulling one into the
//! content-addressed store.
//!
//! The store (`data/images/`) holds `store/<sha512>`: read-only files whose bytes matched a
//! verified list's size and SHA-512, each with `store/<sha512>.json` saying where it came from
//! and who endorsed it (what a bundle will carry). Downloads grow in `partial/<sha512>.part`
//! beside it, on the same file system, and are moved into the store only once verified; nothing
//! else ever reads a partial file. Beside the store, `bases/` holds the runnable base prepared
//! from each certified file (base.rs). See docs/on-disk-layout.md.

pub mod base;
pub mod inspect;
pub mod ova;
pub mod pull;
pub mod qcow2;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use crate::catalog::{self, CatalogError, CatalogImage};
use crate::config::Config;
use crate::paths::Paths;
use crate::progress::Reporter;

/// An image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("no image matches {0:?}; `sloop image list` shows the images of your catalogs")]
    NotFound(String),
    #[error("{query:?} matches {count} images ({titles}); give more of the identifier")]
    Ambiguous {
        query: String,
        count: usize,
        titles: String,
    },
    #[error("image {title} is not certified: {reason}")]
    NotCertified { title: String, reason: String },
    #[error("image {title} is used by machine {machine}; delete the machine first")]
    InUse { title: String, machine: String },
    #[error("cannot tell whether a machine still uses image {title}, so it is kept")]
    UseUnknown {
        title: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Pull(#[from] pull::PullError),
    #[error(transparent)]
    Prepare(#[from] base::PrepareError),
    #[error("image store at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where an image came from, kept beside it in the store (`<sha512>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub sha512: String,
    pub size: u64,
    pub title: String,
    pub version: String,
    /// The image's `dc:identifier`.
    pub identifier: String,
    /// The catalog and list it was certified by.
    pub catalog: String,
    pub list_identifier: String,
    pub endorser_dn: String,
    pub endorser_ca: String,
    /// Where the bytes were read from.
    pub location: String,
    #[serde(with = "time::serde::rfc3339")]
    pub pulled: OffsetDateTime,
}

/// The image store's folders.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(paths: &Paths) -> Self {
        Self {
            root: paths.images_dir(),
        }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    pub fn partial_dir(&self) -> PathBuf {
        self.root.join("partial")
    }

    /// The verified file for `sha512`, whether or not it is there yet.
    pub fn file(&self, sha512: &str) -> PathBuf {
        self.store_dir().join(sha512)
    }

    pub fn partial(&self, sha512: &str) -> PathBuf {
        self.partial_dir().join(format!("{sha512}.part"))
    }

    fn provenance_file(&self, sha512: &str) -> PathBuf {
        self.store_dir().join(format!("{sha512}.json"))
    }

    /// The verified file for `sha512` when it is in the store.
    pub fn stored(&self, sha512: &str) -> Option<PathBuf> {
        let path = self.file(sha512);
        path.is_file().then_some(path)
    }

    /// Bytes of an unfinished download of `sha512`.
    pub fn partial_len(&self, sha512: &str) -> Option<u64> {
        std::fs::metadata(self.partial(sha512))
            .ok()
            .map(|m| m.len())
    }

    pub fn provenance(&self, sha512: &str) -> Option<Provenance> {
        std::fs::read(self.provenance_file(sha512))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    /// The SHA-512s of every stored file.
    pub fn all(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.store_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| n.len() == 128 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

/// Whether an image's bytes are on this computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[ts(export)]
pub enum LocalState {
    Absent,
    /// A download that was interrupted; the next pull resumes it.
    Partial {
        #[ts(type = "number")]
        bytes: u64,
    },
    /// Verified and in the store.
    Stored {
        path: String,
    },
}

/// One image as the CLI and the app show it: from a catalog, or only in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ImageView {
    /// The catalog that lists it; `None` for a stored image no catalog lists any more.
    pub catalog: Option<String>,
    pub identifier: String,
    pub title: String,
    pub version: String,
    pub os: String,
    pub os_version: String,
    pub arch: String,
    /// The list's `hv:format` (`QCOW2`, `OVA`…), when it says.
    pub format: Option<String>,
    #[ts(type = "number")]
    pub size: u64,
    pub sha512: String,
    /// In a verified, current list.
    pub certified: bool,
    /// Why it is not certified.
    pub problem: Option<String>,
    pub local: LocalState,
    /// The runnable base prepared from the stored file.
    pub base: base::BaseState,
}

fn view(store: &Store, image: &CatalogImage, problem: Option<String>) -> ImageView {
    ImageView {
        catalog: Some(image.catalog.clone()),
        identifier: image.identifier.clone(),
        title: image.title.clone(),
        version: image.version.clone(),
        os: image.os.clone(),
        os_version: image.os_version.clone(),
        arch: image.arch.clone(),
        format: image.format.clone(),
        size: image.size,
        sha512: image.sha512.clone(),
        certified: image.certified,
        problem,
        local: local_state(store, &image.sha512),
        base: store.base_state(&image.sha512),
    }
}

fn local_state(store: &Store, sha512: &str) -> LocalState {
    if let Some(path) = store.stored(sha512) {
        LocalState::Stored {
            path: path.display().to_string(),
        }
    } else if let Some(bytes) = store.partial_len(sha512) {
        LocalState::Partial { bytes }
    } else {
        LocalState::Absent
    }
}

/// Every catalog's images, then stored images no catalog lists.
pub fn list(
    paths: &Paths,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Vec<ImageView>, ImageError> {
    let store = Store::new(paths);
    let mut out = Vec::new();
    for catalog in catalog::list(paths, config, now)? {
        for image in &catalog.images {
            let problem = (!image.certified).then(|| {
                catalog
                    .problem
                    .clone()
                    .unwrap_or_else(|| format!("catalog {} is not verified", catalog.name))
            });
            out.push(view(&store, image, problem));
        }
    }
    for sha512 in store.all() {
        if out.iter().any(|v| v.sha512 == sha512) {
            continue;
        }
        let provenance = store.provenance(&sha512);
        let size = std::fs::metadata(store.file(&sha512)).map_or(0, |m| m.len());
        out.push(ImageView {
            catalog: None,
            identifier: provenance
                .as_ref()
                .map_or_else(String::new, |p| p.identifier.clone()),
            title: provenance
                .as_ref()
                .map_or_else(|| "(unknown image)".to_string(), |p| p.title.clone()),
            version: provenance
                .as_ref()
                .map_or_else(String::new, |p| p.version.clone()),
            os: String::new(),
            os_version: String::new(),
            arch: String::new(),
            format: None,
            size,
            sha512: sha512.clone(),
            certified: false,
            problem: Some("no subscribed catalog lists this image any more".into()),
            local: local_state(&store, &sha512),
            base: store.base_state(&sha512),
        });
    }
    Ok(out)
}

/// `sloop doctor`'s look at the stored images: per image, "certified file ✓, runnable base
/// ready / preparing / refused (why)". A refusal is a warning: other images still run.
pub fn check(images: &[ImageView]) -> crate::host::Check {
    use crate::host::{CheckId, CheckStatus};
    let mut lines = Vec::new();
    let mut refused = false;
    for image in images {
        if !matches!(image.local, LocalState::Stored { .. }) {
            continue;
        }
        let file = if image.certified {
            "certified file ✓"
        } else {
            "file no longer certified"
        };
        let base = match &image.base {
            base::BaseState::Ready { derived, .. } => format!("runnable base ready ({derived})"),
            base::BaseState::Preparing => "runnable base preparing".to_string(),
            base::BaseState::Unprepared => {
                "runnable base not prepared yet (made at the first machine)".to_string()
            }
            base::BaseState::Refused { reason } => {
                refused = true;
                format!("runnable base refused: {reason}")
            }
            base::BaseState::Absent => continue,
        };
        lines.push(format!("{} {}: {file}, {base}", image.title, image.version));
    }
    let detail = if lines.is_empty() {
        "no images stored yet".to_string()
    } else {
        lines.join("; ")
    };
    crate::host::check(
        CheckId::Images,
        "Images",
        if refused {
            CheckStatus::Warning
        } else {
            CheckStatus::Ok
        },
        detail,
        refused.then_some(
            "machines cannot be made from a refused image; ask its endorser, or remove it (sloop image rm)",
        ),
    )
}

/// The one image `query` names: an identifier or its unique start (at least 4 characters), a
/// SHA-512 or its unique start (at least 8), or an exact title.
pub fn find<'a>(images: &'a [ImageView], query: &str) -> Result<&'a ImageView, ImageError> {
    let query_lower = query.to_ascii_lowercase();
    let exact: Vec<&ImageView> = images
        .iter()
        .filter(|i| i.identifier == query || i.sha512 == query_lower || i.title == query)
        .collect();
    let matches = if exact.is_empty() {
        images
            .iter()
            .filter(|i| {
                (query.len() >= 4 && !i.identifier.is_empty() && i.identifier.starts_with(query))
                    || (query.len() >= 8 && i.sha512.starts_with(&query_lower))
            })
            .collect()
    } else {
        exact
    };
    // The same bytes listed twice (two catalogs) are one image: prefer a certified listing.
    let mut distinct: Vec<&ImageView> = Vec::new();
    for image in matches {
        match distinct.iter_mut().find(|d| d.sha512 == image.sha512) {
            Some(d) if !d.certified && image.certified => *d = image,
            Some(_) => {}
            None => distinct.push(image),
        }
    }
    match distinct.len() {
        0 => Err(ImageError::NotFound(query.to_string())),
        1 => Ok(distinct[0]),
        count => Err(ImageError::Ambiguous {
            query: query.to_string(),
            count,
            titles: distinct
                .iter()
                .map(|i| format!("{} {}", i.title, i.version))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The task name a pull of `image` reports progress under: `pull:<identifier>`, or
/// `pull:<sha512>` for an image no list names.
pub fn task_name(image: &ImageView) -> String {
    if image.identifier.is_empty() {
        format!("pull:{}", image.sha512)
    } else {
        format!("pull:{}", image.identifier)
    }
}

/// Downloads the certified image `query` names into the store, verifying its size and SHA-512,
/// resuming an earlier partial download. Progress goes to `reporter` under `pull:<identifier>`.
pub async fn pull(
    paths: &Paths,
    config: &Config,
    query: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
    now: OffsetDateTime,
) -> Result<ImageView, ImageError> {
    pull_preferring(paths, config, query, None, reporter, cancel, now).await
}

/// [`pull`], reading the bytes from `prefer` first (a copy in a tutorial's mirror folder): they
/// are verified against the list as any others, and when they do not match, the list's own
/// location is used.
pub async fn pull_preferring(
    paths: &Paths,
    config: &Config,
    query: &str,
    prefer: Option<&Path>,
    reporter: &Reporter,
    cancel: &CancellationToken,
    now: OffsetDateTime,
) -> Result<ImageView, ImageError> {
    let images = list(paths, config, now)?;
    let image = find(&images, query)?.clone();
    if !image.certified {
        return Err(ImageError::NotCertified {
            title: image.title.clone(),
            reason: image.problem.clone().unwrap_or_default(),
        });
    }
    let catalog_name = image.catalog.clone().unwrap_or_default();
    let catalog = catalog::load(paths, config, &catalog_name, now)?;
    let listed = catalog
        .images
        .iter()
        .find(|i| i.sha512 == image.sha512)
        .ok_or_else(|| ImageError::NotFound(query.to_string()))?;
    let store = Store::new(paths);
    let anchors = config.ca_dir();
    let wanted = pull::Wanted {
        sha512: image.sha512.clone(),
        size: image.size,
        location: listed.location.clone(),
        task: task_name(&image),
    };
    let preferred = match prefer.filter(|p| p.is_file()) {
        Some(copy) => {
            let from_copy = pull::Wanted {
                location: copy.display().to_string(),
                ..wanted.clone()
            };
            match pull::fetch_verified(&store, &from_copy, &anchors, reporter, cancel).await {
                Ok(path) => Some(path),
                Err(e @ (pull::PullError::Cancelled { .. } | pull::PullError::Busy)) => {
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::warn!(copy = %copy.display(), "the mirror's copy was not used: {e}");
                    None
                }
            }
        }
        None => None,
    };
    let path = match preferred {
        Some(path) => path,
        None => pull::fetch_verified(&store, &wanted, &anchors, reporter, cancel).await?,
    };
    let provenance = Provenance {
        sha512: image.sha512.clone(),
        size: image.size,
        title: image.title.clone(),
        version: image.version.clone(),
        identifier: image.identifier.clone(),
        catalog: catalog.name.clone(),
        list_identifier: catalog.identifier.clone(),
        endorser_dn: catalog.endorser.dn.clone(),
        endorser_ca: catalog.endorser.ca.clone(),
        location: listed.location.clone(),
        pulled: now,
    };
    let record = store.provenance_file(&image.sha512);
    let bytes = serde_json::to_vec_pretty(&provenance).unwrap_or_default();
    crate::fsutil::write_atomic(&record, &bytes, 0o644).map_err(|source| ImageError::Io {
        path: record.clone(),
        source,
    })?;
    tracing::info!(image = %image.title, sha512 = %&image.sha512[..16], path = %path.display(), "image verified and stored");
    // The certified file is kept whatever comes next; its runnable base is made now, so that a
    // machine is quick to create and a file that will not run is refused at once. A refusal is
    // the returned view's `base` (the pull itself succeeded); only a cancel is an error here.
    let task = task_name(&image);
    let prepared = base::prepare(
        &store,
        &base::Wanted::for_image(&image, &task, config.max_image_bytes()),
        reporter,
        cancel,
    )
    .await;
    match prepared {
        Ok(_) | Err(base::PrepareError::Refused { .. }) => {}
        Err(e @ base::PrepareError::Cancelled(_)) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(image = %image.title, "the runnable base is made later: {e}");
        }
    }
    Ok(ImageView {
        local: LocalState::Stored {
            path: path.display().to_string(),
        },
        base: store.base_state(&image.sha512),
        ..image
    })
}

/// Which machine is built on the base with this SHA-512, if any; an error when that cannot be
/// told (a machine's manifest that cannot be read might name it).
pub type InUse<'a> =
    &'a dyn Fn(&str) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>;

/// Removes an image's verified file (and any partial download). Refused while a machine is
/// built on it (the machine's overlay needs its base), and when `in_use` cannot tell.
pub fn remove(
    paths: &Paths,
    config: &Config,
    query: &str,
    now: OffsetDateTime,
    in_use: InUse<'_>,
) -> Result<ImageView, ImageError> {
    let images = list(paths, config, now)?;
    let image = find(&images, query)?.clone();
    match in_use(&image.sha512) {
        Ok(None) => {}
        Ok(Some(machine)) => {
            return Err(ImageError::InUse {
                title: image.title.clone(),
                machine,
            });
        }
        Err(source) => {
            return Err(ImageError::UseUnknown {
                title: image.title.clone(),
                source,
            });
        }
    }
    let store = Store::new(paths);
    let mut files = store.base_files(&image.sha512);
    files.extend([
        store.file(&image.sha512),
        store.provenance_file(&image.sha512),
        store.partial(&image.sha512),
    ]);
    for path in files {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ImageError::Io { path, source }),
        }
    }
    tracing::info!(image = %image.title, "image removed from the store");
    Ok(ImageView {
        local: LocalState::Absent,
        base: base::BaseState::Absent,
        ..image
    })
}
