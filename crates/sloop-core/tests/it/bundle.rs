//! Bundles through the core with real libvirt, qemu-img and a test grid CA, without booting: a
//! machine on a small base gets changes written into its overlay with `qemu-io`, is exported
//! signed with the user's proxy, verified, then each way a bundle can lie is made and refused by
//! name; finally it is imported into another Sloop home, which pulls the base first. The same
//! machine booted, exported and imported through the CLI is in crates/sloop-cli/tests/it/bundle.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use sloop_core::bundle::archive;
use sloop_core::bundle::export::{self, ExportRequest};
use sloop_core::bundle::import::{self, ImportRequest};
use sloop_core::bundle::{self, BundleError, BundleManifest, sign};
use sloop_core::catalog;
use sloop_core::config::Config;
use sloop_core::image;
use sloop_core::machine::manifest::Resources;
use sloop_core::machine::{self, CreateRequest};
use sloop_core::paths::Paths;
use sloop_core::progress::Reporter;
use sloop_core::proxy::{self, MakeRequest, UserCredentials};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::support::{DomainGuard, GridUser, libvirt, sha512_file};

fn qemu(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A home whose config trusts `anchors` for grid signatures, subscribed to the demo catalog
/// built from `base`.
async fn home(dir: &Path, anchors: &Path, base: &Path) -> (Paths, Config) {
    let paths = Paths::under(dir.to_path_buf()).unwrap();
    let config = Config {
        ca_dir: Some(anchors.to_path_buf()),
        ..Config::default()
    };
    catalog::demo::ensure(&paths, &config, base, None, OffsetDateTime::now_utc())
        .await
        .unwrap();
    (paths, config)
}

/// A signing identity: a fresh proxy of `user`.
fn proxy_identity(user: &GridUser) -> sign::SigningIdentity {
    let credentials = UserCredentials {
        certificate: user.certificate.clone(),
        key: user.key.clone(),
    };
    let proxy = user.path("x509up_bundle");
    proxy::make(
        &MakeRequest::new(&credentials, proxy.clone()),
        Some(GridUser::PASSPHRASE),
        &user.anchors,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    sign::identity(&proxy, &credentials, None, OffsetDateTime::now_utc()).unwrap()
}

/// What `bundle::examine` reports of `file` (it must be readable as a bundle).
async fn examined(paths: &Paths, config: &Config, file: &Path) -> bundle::BundleReport {
    bundle::examine(
        paths,
        config,
        file,
        &Reporter::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

async fn verify(paths: &Paths, config: &Config, file: &Path) -> Result<String, String> {
    bundle::verify(
        paths,
        config,
        file,
        &Reporter::silent(),
        &CancellationToken::new(),
    )
    .await
    .map(|report| report.signer.map(|s| s.identity).unwrap_or_default())
    .map_err(|e| e.to_string())
}

/// A bundle with `manifest`, its signature by `signer` (or `signature` as given), and `overlay`.
fn forge(
    dir: &Path,
    name: &str,
    manifest: &BundleManifest,
    signer: Option<&sign::SigningIdentity>,
    overlay: &Path,
) -> PathBuf {
    let bytes = manifest.to_bytes();
    let signature = signer.map(|s| sign::sign(&bytes, s).unwrap());
    let out = dir.join(name);
    export::write_raw(&out, &bytes, signature.as_deref(), overlay).unwrap();
    out
}

/// `manifest` describing `overlay` (digest and size).
fn describing(manifest: &BundleManifest, overlay: &Path) -> BundleManifest {
    let mut m = manifest.clone();
    m.overlay.sha512 = sha512_file(overlay);
    m.overlay.size = std::fs::metadata(overlay).unwrap().len();
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn export_verify_refuse_and_import_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let user = GridUser::new();
    let conn = libvirt().await;

    // A small base with content of its own: the demo catalog certifies it.
    let base_image = dir.path().join("base.qcow2");
    qemu(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            base_image.to_str().unwrap(),
            "64M",
        ],
    );
    qemu(
        "qemu-io",
        &["-c", "write -P 0x11 0 8M", base_image.to_str().unwrap()],
    );
    let (paths, config) = home(&dir.path().join("a"), &user.anchors, &base_image).await;
    let views = image::list(&paths, &config, OffsetDateTime::now_utc()).unwrap();
    let identifier = views[0].identifier.clone();
    let pulled = image::pull(
        &paths,
        &config,
        &identifier,
        &Reporter::silent(),
        &CancellationToken::new(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();

    let name = format!("bundle{}", std::process::id() % 100_000);
    let _guard = DomainGuard {
        uri: conn.uri().to_string(),
        name: format!("sloop-{name}"),
    };
    machine::create(
        &paths,
        &config,
        &conn,
        &CreateRequest::new(
            &name,
            &pulled.sha512,
            Resources {
                vcpus: 1,
                memory_mib: 256,
                disk_gib: 1,
            },
            None,
        ),
        &Reporter::silent(),
        &CancellationToken::new(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    // The user's changes: 2 MiB of a pattern over the base's.
    let overlay_a = paths.machine_dir(&name).join(machine::OVERLAY);
    qemu(
        "qemu-io",
        &["-c", "write -P 0x5a 1M 2M", overlay_a.to_str().unwrap()],
    );

    // Export, signed with the user's proxy.
    let signer = proxy_identity(&user);
    let file = dir.path().join("m.sloop");
    let exported = export::export(
        &paths,
        &conn,
        &ExportRequest {
            machine: name.clone(),
            output: file.clone(),
            note: "pattern 0x5a at 1 MiB".into(),
        },
        Some(&signer),
        &Reporter::silent(),
        &CancellationToken::new(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(exported.signed_by.as_deref(), Some(GridUser::DN));
    assert!(
        exported
            .provenance
            .contains("endorsed by /DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo Endorser")
            && exported
                .provenance
                .contains(&format!("changed by {}", GridUser::DN)),
        "{}",
        exported.provenance
    );
    // Only the changes travel: far less than the 8 MiB base, more than nothing.
    assert!(exported.bytes < 1 << 20, "{} bytes", exported.bytes);
    assert!(!dir.path().join("m.sloop.partial").exists());
    // A second export to the same file is refused; the first stays.
    let again = export::export(
        &paths,
        &conn,
        &ExportRequest {
            machine: name.clone(),
            output: file.clone(),
            note: String::new(),
        },
        None,
        &Reporter::silent(),
        &CancellationToken::new(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_err();
    assert!(matches!(again, BundleError::OutputExists(_)), "{again}");

    assert_eq!(verify(&paths, &config, &file).await.unwrap(), GridUser::DN);

    // A CA's IGTF namespace bounds whom it vouches for, for bundles as for lists: a user outside
    // it is refused (the signature is a proxy of the user's; the proxy itself passes).
    let namespaces = user.anchors.join(format!(
        "{:08x}.namespaces",
        user.ca.certificate.subject_name_hash()
    ));
    std::fs::write(
        &namespaces,
        "TO Issuer SELF PERMIT Subject \"/DC=invalid/DC=sloop/O=Someone Else/.*\"\n",
    )
    .unwrap();
    let refused = verify(&paths, &config, &file).await.unwrap_err();
    assert!(
        refused.contains(&format!(
            "{} is outside the namespace of its CA",
            GridUser::DN
        )),
        "{refused}"
    );
    std::fs::write(
        &namespaces,
        "TO Issuer SELF PERMIT Subject \"/DC=invalid/DC=sloop/O=Grid Test/.*\"\n",
    )
    .unwrap();
    assert_eq!(verify(&paths, &config, &file).await.unwrap(), GridUser::DN);
    std::fs::remove_file(&namespaces).unwrap();

    // The pieces, to forge from.
    let members = archive::scan(&file).unwrap();
    let manifest = BundleManifest::parse(&members.manifest).unwrap();
    let signature = members.signature.clone().unwrap();
    let overlay = dir.path().join("overlay.qcow2");
    std::io::copy(
        &mut archive::overlay_reader(&file, members.overlay).unwrap(),
        &mut std::fs::File::create(&overlay).unwrap(),
    )
    .unwrap();
    let info = qemu(
        "qemu-img",
        &["info", "--output=json", overlay.to_str().unwrap()],
    );
    assert!(
        info.contains(&format!("\"backing-filename\": \"{}\"", pulled.sha512)),
        "{info}"
    );

    // The manifest changed after signing.
    let mut changed = manifest.clone();
    changed.note = "nothing to see".into();
    let forged = dir.path().join("changed-manifest.sloop");
    export::write_raw(&forged, &changed.to_bytes(), Some(&signature), &overlay).unwrap();
    let refused = verify(&paths, &config, &forged).await.unwrap_err();
    assert!(
        refused.contains("manifest.json.p7s: the signature does not match the manifest"),
        "{refused}"
    );

    // The overlay changed.
    let mut bytes = std::fs::read(&overlay).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let tampered = dir.path().join("tampered.qcow2");
    std::fs::write(&tampered, &bytes).unwrap();
    let forged = forge(
        dir.path(),
        "changed-overlay.sloop",
        &manifest,
        Some(&signer),
        &tampered,
    );
    let refused = verify(&paths, &config, &forged).await.unwrap_err();
    assert!(
        refused.contains("overlay.qcow2 does not match the manifest: its SHA-512 differs"),
        "{refused}"
    );

    // A signer from a CA this home does not trust.
    let stranger = GridUser::new();
    let forged = forge(
        dir.path(),
        "stranger.sloop",
        &manifest,
        Some(&proxy_identity(&stranger)),
        &overlay,
    );
    let refused = verify(&paths, &config, &forged).await.unwrap_err();
    assert!(refused.contains("is not trusted"), "{refused}");

    // An overlay whose backing file is a file of the host.
    let host_backing = dir.path().join("host-backing.qcow2");
    std::fs::copy(&overlay, &host_backing).unwrap();
    qemu(
        "qemu-img",
        &[
            "rebase",
            "-u",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            "/etc/hostname",
            host_backing.to_str().unwrap(),
        ],
    );
    let forged = forge(
        dir.path(),
        "host-backing.sloop",
        &describing(&manifest, &host_backing),
        Some(&signer),
        &host_backing,
    );
    let refused = verify(&paths, &config, &forged).await.unwrap_err();
    assert!(
        refused.contains("names backing file \"/etc/hostname\""),
        "{refused}"
    );

    // An overlay with an external data file (in the test's own folder: qemu-img creates it).
    let external = dir.path().join("external.qcow2");
    let data_file = dir.path().join("external-data.raw");
    qemu(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={}", data_file.display()),
            external.to_str().unwrap(),
            "1G",
        ],
    );
    qemu(
        "qemu-img",
        &[
            "rebase",
            "-u",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            &pulled.sha512,
            external.to_str().unwrap(),
        ],
    );
    let mut m = describing(&manifest, &external);
    m.overlay.virtual_size = 1 << 30;
    let forged = forge(dir.path(), "external.sloop", &m, Some(&signer), &external);
    let refused = verify(&paths, &config, &forged).await.unwrap_err();
    assert!(refused.contains("uses an external data file"), "{refused}");

    // A raw file posing as the overlay.
    let raw = dir.path().join("raw.img");
    std::fs::write(&raw, vec![0x5au8; 64 * 1024]).unwrap();
    let forged = forge(
        dir.path(),
        "raw.sloop",
        &describing(&manifest, &raw),
        Some(&signer),
        &raw,
    );
    let refused = verify(&paths, &config, &forged).await.unwrap_err();
    assert!(
        refused.contains("overlay.qcow2 is not a qcow2 image"),
        "{refused}"
    );

    // Tar members that escape or link.
    for (member, kind, expected) in [
        (
            "../overlay.qcow2",
            tar::EntryType::Regular,
            "has a '..' in its path",
        ),
        (
            "overlay.qcow2",
            tar::EntryType::Symlink,
            "is a symbolic link",
        ),
    ] {
        let forged = dir.path().join("hostile.sloop");
        let mut builder = tar::Builder::new(std::fs::File::create(&forged).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(members.manifest.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "manifest.json", &members.manifest[..])
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        if kind.is_symlink() {
            header.set_size(0);
            builder
                .append_link(&mut header, member, "/etc/shadow")
                .unwrap();
        } else {
            header.set_size(4);
            header.as_old_mut().name[..member.len()].copy_from_slice(member.as_bytes());
            header.set_cksum();
            builder.append(&header, &b"QFI\xfb"[..]).unwrap();
        }
        builder.into_inner().unwrap();
        let refused = verify(&paths, &config, &forged).await.unwrap_err();
        assert!(refused.contains(expected), "{member}: {refused}");
    }

    // Import into another home that subscribes to the same catalog but has not pulled the
    // base: a new signer needs the user's word, and a refusal leaves nothing behind.
    let (paths_b, config_b) = home(&dir.path().join("b"), &user.anchors, &base_image).await;
    let name_b = format!("imported{}", std::process::id() % 100_000);
    let _guard_b = DomainGuard {
        uri: conn.uri().to_string(),
        name: format!("sloop-{name_b}"),
    };
    let mut request = ImportRequest {
        file: file.clone(),
        name: Some(name_b.clone()),
        ..ImportRequest::default()
    };
    let refused = import::import(
        &paths_b,
        &config_b,
        &conn,
        &request,
        None,
        &Reporter::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains(&format!(
            "signed by {}, from whom you have not imported before",
            GridUser::DN
        )),
        "{refused}"
    );
    assert!(!paths_b.machine_dir(&name_b).exists());

    request.trust_signer = true;
    let imported = import::import(
        &paths_b,
        &config_b,
        &conn,
        &request,
        None,
        &Reporter::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(imported.pulled_base);
    assert_eq!(imported.signed_by.as_deref(), Some(GridUser::DN));
    assert_eq!(imported.machine.name, name_b);
    // The changes are there, over the same base, read through the new machine's chain.
    let overlay_b = paths_b.machine_dir(&name_b).join(machine::OVERLAY);
    qemu(
        "qemu-io",
        &[
            "-r",
            "-c",
            "read -P 0x5a 1M 2M",
            "-c",
            "read -P 0x11 3M 1M",
            overlay_b.to_str().unwrap(),
        ],
    );
    let store_a = image::Store::new(&paths).file(&pulled.sha512);
    let store_b = image::Store::new(&paths_b).file(&pulled.sha512);
    assert_eq!(sha512_file(&store_a), pulled.sha512);
    assert_eq!(sha512_file(&store_b), pulled.sha512);
    // Fresh keys, a new instance, and where it came from.
    let host_key =
        |p: &Paths, n: &str| std::fs::read(p.machine_dir(n).join("ssh/known_hosts")).unwrap();
    assert_ne!(
        String::from_utf8_lossy(&host_key(&paths, &name))
            .split(' ')
            .nth(2)
            .map(str::to_string),
        String::from_utf8_lossy(&host_key(&paths_b, &name_b))
            .split(' ')
            .nth(2)
            .map(str::to_string)
    );
    let manifest_a = machine::load(&paths, &name.parse().unwrap()).unwrap();
    let manifest_b = machine::load(&paths_b, &name_b.parse().unwrap()).unwrap();
    assert_ne!(manifest_a.instance_id, manifest_b.instance_id);
    let origin = manifest_b.origin.unwrap();
    assert_eq!(origin.signed_by.as_deref(), Some(GridUser::DN));
    assert_eq!(origin.machine, name);
    assert_eq!(
        std::fs::read_dir(paths_b.data_dir.join("tmp"))
            .unwrap()
            .count(),
        0,
        "scratch folder left"
    );

    // The signer is known now; the same bundle again under another name needs no word.
    let name_c = format!("again{}", std::process::id() % 100_000);
    let _guard_c = DomainGuard {
        uri: conn.uri().to_string(),
        name: format!("sloop-{name_c}"),
    };
    import::import(
        &paths_b,
        &config_b,
        &conn,
        &ImportRequest {
            file,
            name: Some(name_c.clone()),
            ..ImportRequest::default()
        },
        None,
        &Reporter::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    machine::delete(&paths_b, &conn, &name_c).await.unwrap();
    machine::delete(&paths_b, &conn, &name_b).await.unwrap();
    machine::delete(&paths, &conn, &name).await.unwrap();

    // Once the CA revokes the user (a CRL beside the anchors, as fetch-crl leaves it), the same
    // bundle no longer verifies.
    let fmt = time::macros::format_description!("[year][month][day][hour][minute][second]Z");
    let now = OffsetDateTime::now_utc();
    sloop_testkit::revoke(
        &user.ca,
        &user.user.certificate,
        &user.anchors,
        &dir.path().join("ca-work"),
        &(now - time::Duration::hours(1)).format(fmt).unwrap(),
        &(now + time::Duration::days(7)).format(fmt).unwrap(),
    );
    let refused = verify(&paths, &config, &request.file).await.unwrap_err();
    assert!(
        refused.contains(&format!("the signer {} has been revoked", GridUser::DN)),
        "{refused}"
    );
}

/// An unsigned bundle is imported only when the user says so.
#[tokio::test]
async fn an_unsigned_bundle_needs_the_users_word() {
    let dir = tempfile::tempdir().unwrap();
    let user = GridUser::new();
    let base = dir.path().join("base.qcow2");
    qemu(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "16M"],
    );
    let (paths, config) = home(&dir.path().join("h"), &user.anchors, &base).await;
    let sha = sha512_file(&base);
    let overlay = dir.path().join("o.qcow2");
    qemu(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            &sha,
            "-u",
            overlay.to_str().unwrap(),
            "16M",
        ],
    );
    let views = image::list(&paths, &config, OffsetDateTime::now_utc()).unwrap();
    let manifest = BundleManifest {
        format: "sloop-bundle".into(),
        version: 1,
        machine: "unsigned".into(),
        base: bundle::format::BaseRef {
            sha512: sha.clone(),
            size: views[0].size,
            title: views[0].title.clone(),
            version: String::new(),
            identifier: views[0].identifier.clone(),
            location: String::new(),
            list: bundle::format::ListRef {
                identifier: "x".into(),
                url: String::new(),
                endorser_dn: "/CN=x".into(),
                endorser_ca: "/CN=y".into(),
            },
        },
        layout: Default::default(),
        overlay: bundle::format::OverlayRef {
            sha512: sha512_file(&overlay),
            size: std::fs::metadata(&overlay).unwrap().len(),
            virtual_size: 16 << 20,
            format: "qcow2".into(),
            compression: "zstd".into(),
        },
        resources: bundle::format::BundleResources {
            vcpus: 1,
            memory_mib: 256,
            disk_gib: 1,
        },
        user: "sloop".into(),
        work_dir_mount: "/analysis".into(),
        created_at: sloop_core::time_util::rfc3339(OffsetDateTime::now_utc()),
        tool: "test".into(),
        note: String::new(),
    };
    let file = forge(dir.path(), "unsigned.sloop", &manifest, None, &overlay);
    let report = examined(&paths, &config, &file).await;
    assert!(
        !report.verified && !report.signature.ok && report.overlay.ok && report.base.ok,
        "{report:?}"
    );
    let conn = libvirt().await;
    let refused = import::import(
        &paths,
        &config,
        &conn,
        &ImportRequest {
            file,
            ..ImportRequest::default()
        },
        None,
        &Reporter::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("is not signed")
            && refused.to_string().contains("--allow-unsigned"),
        "{refused}"
    );
    assert!(!paths.machine_dir("unsigned").exists());

    // A bundle of a machine booted from an ISO (version 2, live-cd): its disk must name no
    // backing file, not even the base's SHA-512, and its base here must be an ISO.
    let live = BundleManifest {
        version: 2,
        layout: sloop_core::machine::DiskLayout::LiveCd,
        ..manifest.clone()
    };
    let backed = forge(
        dir.path(),
        "live-backed.sloop",
        &describing(&live, &overlay),
        None,
        &overlay,
    );
    let report = examined(&paths, &config, &backed).await;
    assert!(!report.overlay.ok, "{report:?}");
    assert!(
        report.overlay.detail.contains("names backing file"),
        "{report:?}"
    );
    let own = dir.path().join("own.qcow2");
    qemu(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", own.to_str().unwrap(), "16M"],
    );
    let unbacked = forge(
        dir.path(),
        "live.sloop",
        &describing(&live, &own),
        None,
        &own,
    );
    let report = examined(&paths, &config, &unbacked).await;
    assert!(report.overlay.ok, "{report:?}");
    let refused = import::import(
        &paths,
        &config,
        &conn,
        &ImportRequest {
            file: unbacked,
            allow_unsigned: true,
            ..ImportRequest::default()
        },
        None,
        &Reporter::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().ends_with(
            "manifest.json: field layout: says the machine boots from an ISO, but its base is a disk image"
        ),
        "{refused}"
    );
    assert!(!paths.machine_dir("unsigned").exists());
}
