//! The catalog: the image lists the user subscribed to, each verified as vmcatcher verifies it.
//!
//! A subscription is a folder `data/catalogs/<name>/` holding `subscription.toml` (where the list
//! comes from and what is pinned), `list.smime` (the last list that passed every check, exactly
//! as signed) and `status.json` (how the last refresh went). The stored list is verified again
//! each time the catalog is read, so an expired list, an endorser revoked since, or a trust anchor
//! removed since all stop its images from being certified, without deleting anything.
//!
//! An image is certified when its list verifies now, has not expired, and is still published.
//! Facts: shared/references/grid-tech.md, part 1.

pub mod demo;
pub mod imagelist;
pub mod namespaces;
pub mod trust;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ts_rs::TS;

use crate::config::Config;
use crate::fsutil::write_atomic;
use crate::paths::{Paths, ensure_private_dir};
use crate::time_util::rfc3339;
use imagelist::{ImageEntry, ImageList};
use trust::{MAX_LIST_BYTES, TrustError};

/// A catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog name {0:?} is not valid: use 1 to 32 lower-case letters, digits and dashes")]
    BadName(String),
    #[error("no catalog named {0:?}; `sloop catalog list` shows the subscribed ones")]
    NotFound(String),
    #[error("a catalog named {0:?} exists already; choose another name for this one")]
    NameTaken(String),
    #[error("catalog {name:?} already subscribes to {location}")]
    AlreadySubscribed { name: String, location: String },
    #[error("{0:?} is not a list address: give an https://, http:// or file:// URL, or a folder")]
    BadSource(String),
    #[error("cannot fetch the image list from {location}: {reason}")]
    Fetch { location: String, reason: String },
    #[error("the image list at {0} is gone (not found); its images are no longer certified")]
    Gone(String),
    #[error("image list from {location} refused")]
    Refused {
        location: String,
        #[source]
        refusal: Box<Refusal>,
    },
    #[error("cannot set up downloads")]
    Http(#[from] crate::http::HttpError),
    #[error("catalog files at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog file {path} is damaged: {reason}; remove the catalog and add it again")]
    Damaged { path: PathBuf, reason: String },
    #[error("cannot build the demo catalog: {0}")]
    Demo(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CatalogError + '_ {
    move |source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a subscription pins and where it fetches from (`subscription.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// An http(s):// URL, or an absolute path to a list file.
    pub source: String,
    /// The list's `dc:identifier`; a list with another is refused.
    pub identifier: String,
    /// The endorser certificate's subject and issuer, oneline form.
    pub endorser_dn: String,
    pub endorser_ca: String,
    /// Trust anchors for this catalog alone (the demo's CA); the CA folder in force otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchors: Option<PathBuf>,
    #[serde(with = "time::serde::rfc3339")]
    pub added: OffsetDateTime,
}

impl Subscription {
    /// Everything this subscription pins, for [`accept`]; CRLs are required when the settings
    /// say so and the subscription trusts the grid CA folder (not a CA of its own).
    pub fn pins(&self, config: &Config) -> Pins<'_> {
        Pins {
            identifier: Some(&self.identifier),
            endorser_dn: Some(&self.endorser_dn),
            endorser_ca: Some(&self.endorser_ca),
            require_crl: self.anchors.is_none() && config.require_crl(),
        }
    }
}

/// How the last refresh went (`status.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RefreshStatus {
    #[serde(with = "time::serde::rfc3339::option", default)]
    checked: Option<OffsetDateTime>,
    /// When the stored list last passed every check.
    #[serde(with = "time::serde::rfc3339::option", default)]
    accepted: Option<OffsetDateTime>,
    /// The reason the newest fetch failed; the stored list stays in use until it expires.
    error: Option<String>,
    /// The publisher no longer serves the list.
    gone: bool,
}

/// What the user asks to subscribe to.
#[derive(Debug, Clone, Default)]
pub struct AddRequest {
    /// URL, `file://` URL, or a path to a list file or a mirror folder.
    pub source: String,
    /// Default: made from the list's title.
    pub name: Option<String>,
    /// Refuse unless the list's `dc:identifier` is this.
    pub identifier: Option<String>,
    /// Refuse unless the signer's subject / issuer are these (oneline DNs).
    pub endorser_dn: Option<String>,
    pub endorser_ca: Option<String>,
    /// Trust anchors for this catalog alone.
    pub anchors: Option<PathBuf>,
}

/// Where a list is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Url(String),
    /// A list file; images may sit beside it (a mirror folder, a USB stick).
    File(PathBuf),
}

impl Source {
    /// Reads what the user typed: a URL, a `file://` URL, a list file or a mirror folder.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let bad = || CatalogError::BadSource(text.to_string());
        if text.starts_with("https://") || text.starts_with("http://") {
            url::Url::parse(text).map_err(|_| bad())?;
            return Ok(Self::Url(text.to_string()));
        }
        let path = if text.starts_with("file:") {
            url::Url::parse(text)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(bad)?
        } else if text.contains("://") || text.is_empty() {
            return Err(bad());
        } else {
            std::path::absolute(text).map_err(|_| bad())?
        };
        if path.is_dir() {
            return Ok(Self::File(list_in_folder(&path)?));
        }
        Ok(Self::File(path))
    }

    /// The text stored in `subscription.toml`.
    pub fn as_text(&self) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::File(path) => path.display().to_string(),
        }
    }
}

/// The list in a mirror folder: the one `*.image_list` file, or `image.list` (AppDB's name).
fn list_in_folder(folder: &Path) -> Result<PathBuf, CatalogError> {
    let mut found: Vec<PathBuf> = fs_err::read_dir(folder)
        .map_err(io(folder))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".image_list") || n == "image.list")
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(CatalogError::Fetch {
            location: folder.display().to_string(),
            reason: "the folder holds no image list (a *.image_list or image.list file)".into(),
        }),
        n => Err(CatalogError::Fetch {
            location: folder.display().to_string(),
            reason: format!("the folder holds {n} image lists; give the path of one of them"),
        }),
    }
}

/// Reads the signed list from `source`, at most [`MAX_LIST_BYTES`].
pub async fn fetch(source: &Source, anchors: &Path) -> Result<Vec<u8>, CatalogError> {
    let too_large = |what: &str| CatalogError::Refused {
        location: what.to_string(),
        refusal: Box::new(Refusal::Signature(TrustError::TooLarge {
            size: MAX_LIST_BYTES + 1,
            max: MAX_LIST_BYTES,
        })),
    };
    match source {
        Source::File(path) => {
            let shown = path.display().to_string();
            let metadata = match fs_err::metadata(path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CatalogError::Gone(shown));
                }
                Err(e) => {
                    return Err(CatalogError::Fetch {
                        location: shown,
                        reason: e.to_string(),
                    });
                }
            };
            if !metadata.is_file() {
                return Err(CatalogError::Fetch {
                    location: shown,
                    reason: "not a regular file".into(),
                });
            }
            if metadata.len() > MAX_LIST_BYTES as u64 {
                return Err(too_large(&shown));
            }
            // At most one byte past the limit, whatever the file claimed a moment ago.
            let mut bytes = Vec::new();
            let read = fs_err::File::open(path).and_then(|f| {
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(f, MAX_LIST_BYTES as u64 + 1),
                    &mut bytes,
                )
            });
            read.map_err(|e| CatalogError::Fetch {
                location: shown.clone(),
                reason: e.to_string(),
            })?;
            if bytes.len() > MAX_LIST_BYTES {
                return Err(too_large(&shown));
            }
            Ok(bytes)
        }
        Source::Url(url) => {
            let failed = |reason: String| CatalogError::Fetch {
                location: url.clone(),
                reason,
            };
            let client = crate::http::client(anchors)?;
            let response = client
                .get(url)
                .send()
                .await
                .map_err(|e| failed(crate::http::describe(&e)))?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
                return Err(CatalogError::Gone(url.clone()));
            }
            if !status.is_success() {
                return Err(failed(format!("the server answered {status}")));
            }
            if response
                .content_length()
                .is_some_and(|n| n > MAX_LIST_BYTES as u64)
            {
                return Err(too_large(url));
            }
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| failed(crate::http::describe(&e)))?;
                if body.len() + chunk.len() > MAX_LIST_BYTES {
                    return Err(too_large(url));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }
    }
}

/// A list that passed every check.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub list: ImageList,
    pub signer: trust::Signer,
}

/// What a subscription pins, for [`accept`].
#[derive(Debug, Clone, Default)]
pub struct Pins<'a> {
    pub identifier: Option<&'a str>,
    pub endorser_dn: Option<&'a str>,
    pub endorser_ca: Option<&'a str>,
    /// Every CA of the signer's chain must have a current CRL in the anchors folder
    /// (`require_crl` in config.toml, for the grid CA folder only).
    pub require_crl: bool,
}

/// Why a signed image list is refused: the first of vmcatcher's checks that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Signature(#[from] TrustError),
    #[error(transparent)]
    Format(#[from] imagelist::ListError),
    #[error("the list names endorser {named} (hv:dn) but was signed by {signer}")]
    SignerIsNotEndorser { named: String, signer: String },
    #[error("the list names endorser CA {named} (hv:ca) but the signer was issued by {issuer}")]
    IssuerIsNotEndorserCa { named: String, issuer: String },
    #[error("signed by {signer}, but this catalog trusts only {pinned}")]
    EndorserNotPinned { signer: String, pinned: String },
    #[error(
        "the endorser was issued by {issuer}, but this catalog trusts only endorsers from {pinned}"
    )]
    CaNotPinned { issuer: String, pinned: String },
    #[error("the list's identifier is {found} but this catalog is for {pinned}")]
    OtherIdentifier { found: String, pinned: String },
    #[error("the list was created in the future ({created}); check this computer's clock")]
    FromTheFuture { created: String },
    #[error("the list expired on {expires}; the publisher has not renewed it")]
    Expired { expires: String },
}

/// Verdicts of [`accept`] by everything they depend on: the signed bytes, the anchors folder
/// (each file's name, size and change time), the pins, and the minute. Reading the catalogs
/// every two seconds (the app's machine list) then verifies S/MIME at most once a minute per
/// list, and at once after a list or an anchor changes.
static VERDICTS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Result<Accepted, Refusal>>>> =
    std::sync::LazyLock::new(Default::default);

/// [`accept`], answered from [`VERDICTS`] when nothing it depends on changed.
pub fn accept_cached(
    signed: &[u8],
    anchors: &Path,
    pins: &Pins<'_>,
    now: OffsetDateTime,
) -> Result<Accepted, Refusal> {
    verdict(signed, anchors, pins, now).0
}

/// Whether [`accept_cached`] verifies the list now rather than answering from the cache: for
/// tests, which cannot tell otherwise.
#[doc(hidden)]
pub fn accept_cached_verifies(
    signed: &[u8],
    anchors: &Path,
    pins: &Pins<'_>,
    now: OffsetDateTime,
) -> bool {
    verdict(signed, anchors, pins, now).1
}

/// The verdict, and whether it was reached now (not found in the cache).
fn verdict(
    signed: &[u8],
    anchors: &Path,
    pins: &Pins<'_>,
    now: OffsetDateTime,
) -> (Result<Accepted, Refusal>, bool) {
    use sha2::{Digest as _, Sha256};
    let mut key = Sha256::new();
    key.update(signed);
    let mut entries: Vec<String> = std::fs::read_dir(anchors)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            let meta = entry.metadata().ok();
            format!(
                "{}|{}|{:?}",
                entry.file_name().to_string_lossy(),
                meta.as_ref().map_or(0, std::fs::Metadata::len),
                meta.and_then(|m| m.modified().ok())
            )
        })
        .collect();
    entries.sort();
    for part in entries
        .iter()
        .map(String::as_str)
        .chain([
            anchors.to_string_lossy().as_ref(),
            pins.identifier.unwrap_or("-"),
            pins.endorser_dn.unwrap_or("-"),
            pins.endorser_ca.unwrap_or("-"),
            if pins.require_crl { "crl" } else { "-" },
        ])
        .chain([now.unix_timestamp().div_euclid(60).to_string().as_str()])
    {
        key.update(part.as_bytes());
        key.update([0]);
    }
    let key = hex::encode(key.finalize());
    let mut verdicts = VERDICTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(verdict) = verdicts.get(&key) {
        return (verdict.clone(), false);
    }
    let verdict = accept(signed, anchors, pins, now);
    // Old minutes' verdicts are never asked for again: start afresh rather than grow.
    if verdicts.len() >= 256 {
        verdicts.clear();
    }
    verdicts.insert(key, verdict.clone());
    (verdict, true)
}

/// Every check vmcatcher makes (`msgcheck.py`), in its order, after the signature: the signer is
/// the endorser the list names, the identifier is the pinned one, and the list is current.
/// Returns the first that fails.
pub fn accept(
    signed: &[u8],
    anchors: &Path,
    pins: &Pins<'_>,
    now: OffsetDateTime,
) -> Result<Accepted, Refusal> {
    let verified = trust::verify(signed, anchors, pins.require_crl, now)?;
    let list = ImageList::parse(&verified.content)?;
    let signer = verified.signer;
    if list.endorser.dn != signer.subject {
        return Err(Refusal::SignerIsNotEndorser {
            named: list.endorser.dn,
            signer: signer.subject,
        });
    }
    if list.endorser.ca != signer.issuer {
        return Err(Refusal::IssuerIsNotEndorserCa {
            named: list.endorser.ca,
            issuer: signer.issuer,
        });
    }
    if let Some(dn) = pins.endorser_dn
        && dn != signer.subject
    {
        return Err(Refusal::EndorserNotPinned {
            signer: signer.subject,
            pinned: dn.to_string(),
        });
    }
    if let Some(ca) = pins.endorser_ca
        && ca != signer.issuer
    {
        return Err(Refusal::CaNotPinned {
            issuer: signer.issuer,
            pinned: ca.to_string(),
        });
    }
    if let Some(identifier) = pins.identifier
        && identifier != list.identifier
    {
        return Err(Refusal::OtherIdentifier {
            found: list.identifier,
            pinned: identifier.to_string(),
        });
    }
    if now < list.created {
        return Err(Refusal::FromTheFuture {
            created: rfc3339(list.created),
        });
    }
    if now > list.expires {
        return Err(Refusal::Expired {
            expires: rfc3339(list.expires),
        });
    }
    Ok(Accepted { list, signer })
}

/// A catalog's name: 1 to 32 of `[a-z0-9-]`, not starting with a dash.
fn check_name(name: &str) -> Result<(), CatalogError> {
    let ok = (1..=32).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CatalogError::BadName(name.to_string()))
    }
}

/// A name made from a list's title: "CernVM 4 (prod)" becomes `cernvm-4-prod`.
pub(crate) fn name_from_title(title: &str) -> String {
    let mut name = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
        if name.len() >= 32 {
            break;
        }
    }
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        "catalog".into()
    } else {
        name
    }
}

pub(crate) fn catalogs_dir(paths: &Paths) -> PathBuf {
    paths.data_dir.join("catalogs")
}

/// The trust anchors a subscription uses.
fn anchors_for(subscription: &Subscription, config: &Config) -> PathBuf {
    subscription
        .anchors
        .clone()
        .unwrap_or_else(|| config.ca_dir())
}

/// Subscribes to a list: fetches it, runs every check, pins its identifier and endorser (those
/// the user gave must match), and keeps it.
pub async fn add(
    paths: &Paths,
    config: &Config,
    request: &AddRequest,
    now: OffsetDateTime,
) -> Result<CatalogView, CatalogError> {
    if let Some(name) = &request.name {
        check_name(name)?;
    }
    let source = Source::parse(&request.source)?;
    let source_text = source.as_text();
    for (name, existing) in subscriptions(paths)? {
        if existing.source == source_text {
            return Err(CatalogError::AlreadySubscribed {
                name,
                location: source_text,
            });
        }
    }
    let anchors = request.anchors.clone().unwrap_or_else(|| config.ca_dir());
    let signed = fetch(&source, &anchors).await?;
    add_signed(paths, config, request, source_text, &signed, now)
}

/// [`add`] of a list whose signed bytes were read already (from a tutorial's mirror), to be
/// fetched from `source_text` from then on.
pub fn add_signed(
    paths: &Paths,
    config: &Config,
    request: &AddRequest,
    source_text: String,
    signed: &[u8],
    now: OffsetDateTime,
) -> Result<CatalogView, CatalogError> {
    if let Some(name) = &request.name {
        check_name(name)?;
    }
    let anchors = request.anchors.clone().unwrap_or_else(|| config.ca_dir());
    let pins = Pins {
        identifier: request.identifier.as_deref(),
        endorser_dn: request.endorser_dn.as_deref(),
        endorser_ca: request.endorser_ca.as_deref(),
        require_crl: request.anchors.is_none() && config.require_crl(),
    };
    let accepted =
        accept(signed, &anchors, &pins, now).map_err(|refusal| CatalogError::Refused {
            location: source_text.clone(),
            refusal: Box::new(refusal),
        })?;
    let name = match &request.name {
        Some(name) => name.clone(),
        None => name_from_title(&accepted.list.title),
    };
    let dir = catalogs_dir(paths).join(&name);
    if dir.join("subscription.toml").exists() {
        return Err(CatalogError::NameTaken(name));
    }
    ensure_private_dir(&dir).map_err(io(&dir))?;
    let subscription = Subscription {
        source: source_text,
        identifier: accepted.list.identifier.clone(),
        endorser_dn: accepted.signer.subject.clone(),
        endorser_ca: accepted.signer.issuer.clone(),
        anchors: request.anchors.clone(),
        added: now,
    };
    // The list first: a subscription file is what makes the folder a catalog.
    let list_path = dir.join("list.smime");
    write_atomic(&list_path, signed, 0o644).map_err(io(&list_path))?;
    write_status(
        &dir,
        &RefreshStatus {
            checked: Some(now),
            accepted: Some(now),
            ..RefreshStatus::default()
        },
    )?;
    let text = toml::to_string(&subscription).map_err(|e| CatalogError::Damaged {
        path: dir.clone(),
        reason: e.to_string(),
    })?;
    let sub_path = dir.join("subscription.toml");
    write_atomic(&sub_path, text.as_bytes(), 0o644).map_err(io(&sub_path))?;
    tracing::info!(catalog = %name, source = %subscription.source, endorser = %subscription.endorser_dn, "subscribed");
    load(paths, config, &name, now)
}

/// Every subscription, by name, sorted.
pub fn subscriptions(paths: &Paths) -> Result<Vec<(String, Subscription)>, CatalogError> {
    let dir = catalogs_dir(paths);
    let entries = match fs_err::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let path = entry.path().join("subscription.toml");
        let text = match fs_err::read_to_string(&path) {
            Ok(text) => text,
            // A folder without a subscription file is a half-made add: not a catalog.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        };
        let subscription = toml::from_str(&text).map_err(|e| CatalogError::Damaged {
            path: path.clone(),
            reason: e.message().to_string(),
        })?;
        out.push((name, subscription));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn subscription(paths: &Paths, name: &str) -> Result<Subscription, CatalogError> {
    check_name(name)?;
    subscriptions(paths)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
        .ok_or_else(|| CatalogError::NotFound(name.to_string()))
}

fn read_status(dir: &Path) -> RefreshStatus {
    fs_err::read(dir.join("status.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn write_status(dir: &Path, status: &RefreshStatus) -> Result<(), CatalogError> {
    let path = dir.join("status.json");
    let bytes = serde_json::to_vec_pretty(status).map_err(|e| CatalogError::Damaged {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_atomic(&path, &bytes, 0o644).map_err(io(&path))
}

/// Whether a catalog's images may be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum CatalogState {
    /// The stored list verifies and is current: its images are certified.
    Verified,
    /// The stored list's `dc:date:expires` has passed.
    Expired,
    /// The publisher no longer serves the list.
    Gone,
    /// The stored list no longer passes a check (endorser revoked or expired, anchor removed).
    Refused,
}

/// The endorser, as the verified signature shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct EndorserView {
    pub dn: String,
    pub ca: String,
    pub email: String,
    pub creator: String,
}

/// One catalog as the CLI and the app show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CatalogView {
    pub name: String,
    pub source: String,
    pub title: String,
    pub description: String,
    /// The list's `dc:identifier`.
    pub identifier: String,
    pub vo: Option<String>,
    pub endorser: EndorserView,
    /// RFC 3339.
    pub created: String,
    pub expires: String,
    pub state: CatalogState,
    /// Why the state is not `verified`, or why the latest refresh failed.
    pub problem: Option<String>,
    /// When the list was last fetched, RFC 3339.
    pub checked: Option<String>,
    /// Images the list carries (dropped ones are in `dropped`).
    pub images: Vec<CatalogImage>,
    /// Entries left out of the list, each with why.
    pub dropped: Vec<String>,
}

/// One image of a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CatalogImage {
    pub catalog: String,
    pub identifier: String,
    pub title: String,
    pub description: String,
    pub version: String,
    pub os: String,
    pub os_version: String,
    pub arch: String,
    pub format: Option<String>,
    #[ts(type = "number")]
    pub size: u64,
    pub sha512: String,
    /// In a verified, current list.
    pub certified: bool,
    /// Where its bytes come from: a file beside the list (mirror), or its URL.
    pub location: String,
    /// The list's `hv:uri` for it: where a grid site fetches it (also when a mirror is used here).
    pub url: String,
}

/// Reads one catalog and verifies its stored list again, now.
pub fn load(
    paths: &Paths,
    config: &Config,
    name: &str,
    now: OffsetDateTime,
) -> Result<CatalogView, CatalogError> {
    let subscription = subscription(paths, name)?;
    let dir = catalogs_dir(paths).join(name);
    let list_path = dir.join("list.smime");
    let signed = fs_err::read(&list_path).map_err(io(&list_path))?;
    let status = read_status(&dir);
    let anchors = anchors_for(&subscription, config);
    let pins = subscription.pins(config);
    let (list, state, mut problem) = match accept_cached(&signed, &anchors, &pins, now) {
        Ok(accepted) if status.gone => (accepted.list, CatalogState::Gone, None),
        Ok(accepted) => (accepted.list, CatalogState::Verified, None),
        Err(refusal) => {
            let reason = refusal.to_string();
            // It passed every check when it was stored: read it as it was then, to show what it
            // lists (none of it certified now) and whether it has simply expired.
            let then = status.accepted.unwrap_or(subscription.added);
            match accept_cached(&signed, &anchors, &pins, then) {
                Ok(accepted) if now > accepted.list.expires => {
                    (accepted.list, CatalogState::Expired, Some(reason))
                }
                Ok(accepted) => (accepted.list, CatalogState::Refused, Some(reason)),
                Err(_) => return Ok(unreadable(name, &subscription, &status, reason)),
            }
        }
    };
    if state == CatalogState::Gone {
        problem = Some(format!(
            "the list is no longer published at {}",
            subscription.source
        ));
    } else if problem.is_none() {
        problem = status.error.clone();
    }
    let certified = state == CatalogState::Verified;
    let images = list
        .images
        .iter()
        .map(|image| CatalogImage {
            catalog: name.to_string(),
            identifier: image.identifier.clone(),
            title: image.title.clone(),
            description: image.description.clone(),
            version: image.version.clone(),
            os: image.os.clone(),
            os_version: image.os_version.clone(),
            arch: image.arch.clone(),
            format: image.format.clone(),
            size: image.size,
            sha512: image.sha512.clone(),
            certified,
            location: image_location(&subscription, image),
            url: image.uri.clone(),
        })
        .collect();
    Ok(CatalogView {
        name: name.to_string(),
        source: subscription.source.clone(),
        title: list.title.clone(),
        description: list.description.clone(),
        identifier: list.identifier.clone(),
        vo: list.vo.clone(),
        endorser: EndorserView {
            dn: list.endorser.dn.clone(),
            ca: list.endorser.ca.clone(),
            email: list.endorser.email.clone(),
            creator: list.endorser.creator.clone(),
        },
        created: rfc3339(list.created),
        expires: rfc3339(list.expires),
        state,
        problem,
        checked: status.checked.map(rfc3339),
        images,
        dropped: list.dropped.clone(),
    })
}

fn unreadable(
    name: &str,
    subscription: &Subscription,
    status: &RefreshStatus,
    reason: String,
) -> CatalogView {
    CatalogView {
        name: name.to_string(),
        source: subscription.source.clone(),
        title: name.to_string(),
        description: String::new(),
        identifier: subscription.identifier.clone(),
        vo: None,
        endorser: EndorserView {
            dn: subscription.endorser_dn.clone(),
            ca: subscription.endorser_ca.clone(),
            email: String::new(),
            creator: String::new(),
        },
        created: String::new(),
        expires: String::new(),
        state: CatalogState::Refused,
        problem: Some(reason),
        checked: status.checked.map(rfc3339),
        images: Vec::new(),
        dropped: Vec::new(),
    }
}

/// Where an image's bytes are read from: the file beside a local list when there is one (a
/// mirror), its `hv:uri` otherwise.
fn image_location(subscription: &Subscription, image: &ImageEntry) -> String {
    if !subscription.source.contains("://") {
        let beside = Path::new(&subscription.source)
            .parent()
            .zip(image.uri.rsplit('/').next().filter(|n| !n.is_empty()))
            .map(|(dir, file)| dir.join(file));
        if let Some(path) = beside
            && path.is_file()
        {
            return path.display().to_string();
        }
    }
    image.uri.clone()
}

/// Every catalog, each verified now. A catalog whose files cannot be read is skipped with a
/// warning in the log rather than hiding the others.
pub fn list(
    paths: &Paths,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Vec<CatalogView>, CatalogError> {
    let mut out = Vec::new();
    for (name, _) in subscriptions(paths)? {
        match load(paths, config, &name, now) {
            Ok(view) => out.push(view),
            Err(e) => tracing::warn!(catalog = %name, "cannot read catalog: {e}"),
        }
    }
    Ok(out)
}

/// Fetches a catalog's list again. A new list that passes every check replaces the stored one;
/// one that fails is refused and the stored list stays in use until it expires; a list no longer
/// published marks the catalog gone.
pub async fn refresh(
    paths: &Paths,
    config: &Config,
    name: &str,
    now: OffsetDateTime,
) -> Result<CatalogView, CatalogError> {
    let subscription = subscription(paths, name)?;
    let dir = catalogs_dir(paths).join(name);
    let anchors = anchors_for(&subscription, config);
    let source = Source::parse(&subscription.source)?;
    let mut status = RefreshStatus {
        checked: Some(now),
        accepted: read_status(&dir).accepted,
        ..RefreshStatus::default()
    };
    let outcome = match fetch(&source, &anchors).await {
        Ok(signed) => {
            let pins = subscription.pins(config);
            match accept(&signed, &anchors, &pins, now) {
                Ok(_) => {
                    let list_path = dir.join("list.smime");
                    write_atomic(&list_path, &signed, 0o644).map_err(io(&list_path))?;
                    status.accepted = Some(now);
                    Ok(())
                }
                Err(refusal) => Err(CatalogError::Refused {
                    location: subscription.source.clone(),
                    refusal: Box::new(refusal),
                }),
            }
        }
        Err(CatalogError::Gone(location)) => {
            status.gone = true;
            Err(CatalogError::Gone(location))
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &outcome {
        let said = crate::error_chain(e);
        tracing::warn!(catalog = %name, "refresh failed: {said}");
        status.error = Some(said);
    } else {
        tracing::info!(catalog = %name, "refreshed");
    }
    write_status(&dir, &status)?;
    outcome?;
    load(paths, config, name, now)
}

/// Forgets a subscription. Downloaded images stay in the store (no longer certified by it).
pub fn remove(paths: &Paths, name: &str) -> Result<(), CatalogError> {
    subscription(paths, name)?;
    let dir = catalogs_dir(paths).join(name);
    // Drop the subscription file first: a half-removed folder is then no longer a catalog.
    let sub_path = dir.join("subscription.toml");
    fs_err::remove_file(&sub_path).map_err(io(&sub_path))?;
    fs_err::remove_dir_all(&dir).map_err(io(&dir))?;
    tracing::info!(catalog = %name, "unsubscribed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_titles() {
        assert_eq!(name_from_title("CernVM 4 (prod)"), "cernvm-4-prod");
        assert_eq!(name_from_title("  ***  "), "catalog");
        assert_eq!(name_from_title(&"a".repeat(50)).len(), 32);
        assert!(check_name("cernvm-4").is_ok());
        assert!(check_name("Bad").is_err());
        assert!(check_name("-x").is_err());
    }

    #[test]
    fn sources_are_urls_files_or_mirror_folders() {
        assert_eq!(
            Source::parse("https://appdb.example/x.list").unwrap(),
            Source::Url("https://appdb.example/x.list".into())
        );
        assert!(matches!(
            Source::parse("ftp://x/y"),
            Err(CatalogError::BadSource(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Source::parse(dir.path().to_str().unwrap()),
            Err(CatalogError::Fetch { .. })
        ));
        std::fs::write(dir.path().join("demo.image_list"), "x").unwrap();
        assert_eq!(
            Source::parse(&format!("file://{}", dir.path().display())).unwrap(),
            Source::File(dir.path().join("demo.image_list"))
        );
    }
}
