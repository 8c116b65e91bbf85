//! The demo catalog: what a newcomer gets without any network. A mirror folder built on the spot
//! from a local image (the project's tiny test image), with a list signed by a demo endorser under
//! a demo CA. The demo CA is a trust anchor for this catalog alone (its own anchors folder), never
//! for any other list, and its private keys are thrown away once the list is signed, so nothing
//! else can ever be signed under it.
//!
//! Layout under `data/demo/`: `ca/<hash>.0` (the anchor) and `mirror/` (the signed
//! `sloop-demo.image_list` with the image file beside it).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha512};
use time::OffsetDateTime;

use super::{AddRequest, CatalogError, CatalogState, CatalogView};
use crate::config::Config;
use crate::paths::{Paths, ensure_private_dir};
use crate::pki::{self, CertificateSpec};
use crate::time_util::rfc3339;

/// The catalog's name.
pub const NAME: &str = "demo";
/// The demo list's `dc:identifier`, the same every time it is built.
pub const LIST_IDENTIFIER: &str = "5100b007-de70-4000-8000-000000000001";
const CA_DN: &str = "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo CA";
const ENDORSER_DN: &str = "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo Endorser";
/// How long the demo list and its certificates stay valid.
const VALID_DAYS: i64 = 365;
const LIST_FILE: &str = "sloop-demo.image_list";
const IMAGE_FILE: &str = "sloop-demo.qcow2";
const LIVE_FILE: &str = "sloop-demo-live.iso";

fn demo_dir(paths: &Paths) -> PathBuf {
    paths.data_dir.join("demo")
}

/// Subscribes to the demo catalog, building it from `image` (and, when given, the ISO variant
/// `live`, listed beside it) first when it is missing, expired or no longer verifies. Leaves a
/// working demo catalog alone.
pub async fn ensure(
    paths: &Paths,
    config: &Config,
    image: &Path,
    live: Option<&Path>,
    now: OffsetDateTime,
) -> Result<CatalogView, CatalogError> {
    let subscribed = super::subscriptions(paths)?
        .into_iter()
        .any(|(name, _)| name == NAME);
    if subscribed {
        let view = super::load(paths, config, NAME, now)?;
        // A demo built before its ISO variant was there is built again with it.
        let lists_live = view
            .images
            .iter()
            .any(|i| i.format.as_deref() == Some("ISO"));
        if view.state == CatalogState::Verified && (live.is_none() || lists_live) {
            return Ok(view);
        }
        tracing::info!(state = ?view.state, lists_live, "rebuilding the demo catalog");
        super::remove(paths, NAME)?;
    }
    let mirror = build(paths, image, live, now).await?;
    super::add(
        paths,
        config,
        &AddRequest {
            source: mirror.display().to_string(),
            name: Some(NAME.into()),
            identifier: Some(LIST_IDENTIFIER.into()),
            endorser_dn: Some(ENDORSER_DN.into()),
            endorser_ca: Some(CA_DN.into()),
            anchors: Some(demo_dir(paths).join("ca")),
        },
        now,
    )
    .await
}

/// Builds the mirror folder and returns it.
async fn build(
    paths: &Paths,
    image: &Path,
    live: Option<&Path>,
    now: OffsetDateTime,
) -> Result<PathBuf, CatalogError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| CatalogError::Demo(format!("{what}: {e}"));
    let dir = demo_dir(paths);
    let ca_dir = dir.join("ca");
    let mirror = dir.join("mirror");
    // A fresh start: an old demo CA must not stay trusted beside a new one.
    for sub in [&ca_dir, &mirror] {
        match std::fs::remove_dir_all(sub) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(&sub.display().to_string(), &e)),
        }
        ensure_private_dir(sub).map_err(|e| failed("cannot create the demo folders", &e))?;
    }
    let copied = |from: &Path, name: &str| {
        let (from, to) = (from.to_path_buf(), mirror.join(name));
        async move {
            let what = format!("copying {}", from.display());
            tokio::task::spawn_blocking(move || copy_hashing(&from, &to))
                .await
                .map_err(|e| failed(&what, &e))?
        }
    };
    let disk = copied(image, IMAGE_FILE).await?;
    let live = match live {
        Some(iso) => Some(copied(iso, LIVE_FILE).await?),
        None => None,
    };

    let start = now.unix_timestamp() - 3600;
    let end = now.unix_timestamp() + VALID_DAYS * 86_400;
    let ca = pki::issue(
        &CertificateSpec {
            subject: CA_DN,
            not_before: start,
            not_after: end + 86_400,
            ca: true,
            server_names: &[],
        },
        None,
    )
    .map_err(|e| failed("making the demo CA", &e))?;
    let endorser = pki::issue(
        &CertificateSpec {
            subject: ENDORSER_DN,
            not_before: start,
            not_after: end + 3600,
            ca: false,
            server_names: &[],
        },
        Some(&ca),
    )
    .map_err(|e| failed("making the demo endorser", &e))?;
    pki::install_anchor(&ca_dir, &ca.certificate)
        .map_err(|e| failed("installing the demo CA", &e))?;

    let list = list_document(&disk, live.as_ref(), now, end);
    let content =
        serde_json::to_string_pretty(&list).map_err(|e| failed("writing the demo list", &e))?;
    let signed = pki::sign_smime(content.as_bytes(), &endorser)
        .map_err(|e| failed("signing the demo list", &e))?;
    let list_path = mirror.join(LIST_FILE);
    crate::fsutil::write_atomic(&list_path, &signed, 0o644)
        .map_err(|e| failed(&list_path.display().to_string(), &e))?;
    // `ca` and `endorser` (with their keys) are dropped here: nothing more can be signed.
    tracing::info!(mirror = %mirror.display(), "demo catalog built");
    Ok(mirror)
}

/// An identifier tied to the bytes: the same image gets the same identifier on every build.
fn identifier_of(sha512: &str) -> String {
    format!(
        "{}-{}-4{}-8{}-{}",
        &sha512[0..8],
        &sha512[8..12],
        &sha512[13..16],
        &sha512[17..20],
        &sha512[20..32]
    )
}

/// The demo list, in hepixvmitrust's shape: the disk image (SHA-512 and size), and the ISO
/// variant when there is one.
fn list_document(
    disk: &(String, u64),
    live: Option<&(String, u64)>,
    now: OffsetDateTime,
    end: i64,
) -> serde_json::Value {
    let expires = OffsetDateTime::from_unix_timestamp(end).unwrap_or(now);
    // Both demo images are the same tiny Linux, built by the same recipe.
    let entry =
        |(sha512, size): &(String, u64), title: &str, format: &str, file: &str, about: &str| {
            serde_json::json!({ "hv:image": {
            "dc:description": about,
            "dc:identifier": identifier_of(sha512),
            "dc:title": title,
            "hv:format": format,
            "hv:hypervisor": "QEMU,KVM",
            "hv:size": size,
            "hv:uri": format!("https://sloop.invalid/demo/{file}"),
            "hv:version": "1",
            "sl:arch": "x86_64",
            "sl:checksum:sha512": sha512,
            "sl:comments": "Built from Debian packages by assets/test-image/build.sh",
            "sl:os": "Linux",
            "sl:osversion": "Debian 12 kernel, busybox userland"
        } })
        };
    let mut images = vec![entry(
        disk,
        "Sloop tiny test image",
        "QCOW2",
        IMAGE_FILE,
        "A tiny Linux (busybox, dropbear SSH) that boots in seconds, even without KVM.",
    )];
    if let Some(live) = live {
        images.push(entry(
            live,
            "Sloop tiny live ISO",
            "ISO",
            LIVE_FILE,
            "The same tiny Linux as an ISO, µCernVM style: boots from a read-only CD and keeps its changes on an empty disk of its own.",
        ));
    }
    serde_json::json!({
        "hv:imagelist": {
            "dc:date:created": rfc3339(now),
            "dc:date:expires": rfc3339(expires),
            "dc:description": "Sloop's offline demo catalog: the project's tiny test image, endorsed by a demo endorser trusted for this catalog only.",
            "dc:identifier": LIST_IDENTIFIER,
            "dc:source": "sloop.invalid",
            "dc:title": "Sloop demo",
            "hv:endorser": { "hv:x509": {
                "dc:creator": "Sloop",
                "hv:ca": CA_DN,
                "hv:dn": ENDORSER_DN,
                "hv:email": "demo@sloop.invalid"
            } },
            "hv:images": images,
            "hv:uri": format!("https://sloop.invalid/demo/{LIST_FILE}"),
            "hv:version": "1"
        }
    })
}

/// Copies `from` to `to` and returns the copy's SHA-512 and size.
fn copy_hashing(from: &Path, to: &Path) -> Result<(String, u64), CatalogError> {
    let failed = |e: std::io::Error| {
        CatalogError::Demo(format!(
            "cannot copy the demo image {}: {e}; build it with assets/test-image/build.sh",
            from.display()
        ))
    };
    let mut source = std::fs::File::open(from).map_err(failed)?;
    let mut out = std::fs::File::create(to).map_err(failed)?;
    let mut hasher = Sha512::new();
    let mut buffer = vec![0; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let n = source.read(&mut buffer).map_err(failed)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        std::io::Write::write_all(&mut out, &buffer[..n]).map_err(failed)?;
        size += n as u64;
    }
    out.sync_all().map_err(failed)?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Names the image the demo is built from; `scripts/run.sh` sets it to the tiny test image.
pub const IMAGE_ENV: &str = "SLOOP_DEMO_IMAGE";

/// Where an installed Sloop finds its demo image, relative to the folder of its binaries
/// (`/usr/bin` → `/usr/share/sloop/demo/…`): the package carries the tiny test image there.
pub const INSTALLED_IMAGE: &str = "../share/sloop/demo/sloop-demo.qcow2";

/// Names the demo's ISO variant, listed beside the disk image (optional).
pub const LIVE_ENV: &str = "SLOOP_DEMO_LIVE_ISO";

/// Where an installed Sloop finds the demo's ISO variant (beside [`INSTALLED_IMAGE`]).
pub const INSTALLED_LIVE: &str = "../share/sloop/demo/sloop-demo-live.iso";

/// The demo's ISO variant, if any: the one `SLOOP_DEMO_LIVE_ISO` names, else the one installed
/// beside the running binary (see [`INSTALLED_LIVE`]).
/// The ISO is optional: one named but missing is left out of the demo (with a warning).
pub fn default_live() -> Option<PathBuf> {
    let live = named_or_installed(LIVE_ENV, INSTALLED_LIVE)?;
    if live.is_file() {
        Some(live)
    } else {
        tracing::warn!(path = %live.display(), "{LIVE_ENV} names no file: the demo lists no ISO");
        None
    }
}

/// The demo image: the one `SLOOP_DEMO_IMAGE` names, else the one installed beside the running
/// binary (see [`INSTALLED_IMAGE`]).
pub fn default_image() -> Result<PathBuf, CatalogError> {
    named_or_installed(IMAGE_ENV, INSTALLED_IMAGE)
        .ok_or_else(|| {
            CatalogError::Demo(format!(
                "no demo image: install Sloop's package (it carries one), or set {IMAGE_ENV} to a qcow2 image (scripts/run.sh sets it to the tiny test image)"
            ))
        })
}

/// The file the variable `env` names, else `installed` (relative to the running binary's folder)
/// when it is there.
fn named_or_installed(env: &str, installed: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(installed)))
        .filter(|path| path.is_file())
}
