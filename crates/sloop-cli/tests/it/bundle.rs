//! A machine travels as a bundle, through the `sloop` binary, on the Debian image with real
//! cloud-init: a marker written into its root disk (not /analysis) while the user's proxy is
//! attached; `machine export` (refused while it runs, then `--stop`), signed with the proxy;
//! `bundle verify` names the signer; none of the proxy's bytes are in the bundle's changes; the
//! machine is deleted, imported under another Sloop home that subscribes to the same catalog
//! (which pulls the base first), started with fresh keys, and the marker is there. The base's
//! SHA-512 is the same in both homes.
//!
//! The refusals (tampered manifest or overlay, untrusted signer, hostile tar members and
//! overlays) are made and checked through the core in crates/sloop-core/tests/it/bundle.rs.

use std::path::Path;
use std::process::Command;

use sloop_testkit::{GridUser, TestImage};

use crate::support::{Cleanup, Sloop, one_vm_at_a_time, sha512_file};

const MACHINE: &str = "cli-bundle";
const IMPORTED: &str = "cli-bundle-b";

/// Subscribes `sloop` to the demo catalog built from the cloud-init image; its identifier.
fn demo_cloud(sloop: &Sloop) -> String {
    let image = sloop_testkit::test_image(TestImage::Cloud);
    sloop.subscribe(&["--demo", "--image", image.to_str().unwrap()])
}

/// Lines of the proxy file that would give it away: the base64 lines of its private key and of
/// the proxy certificate (the first block). The user's certificate, further down, is left out:
/// it is public, and its lines about its issuer can equal lines of the CA certificate that goes
/// into the machine on purpose (the trust anchors).
fn proxy_lines(proxy: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(proxy).unwrap();
    let mut lines = Vec::new();
    let mut block = None::<String>;
    let mut certificates = 0;
    for line in text.lines() {
        if let Some(label) = line.strip_prefix("-----BEGIN ") {
            if label.contains("CERTIFICATE") {
                certificates += 1;
            }
            block = Some(label.to_string());
        } else if line.starts_with("-----END ") {
            block = None;
        } else if let Some(label) = &block {
            let wanted = label.contains("PRIVATE KEY") || certificates == 1;
            if wanted && line.len() == 64 {
                lines.push(line.as_bytes().to_vec());
            }
        }
    }
    lines
}

/// Whether any of `needles` occurs in the file at `path` (GNU grep: fast over gigabytes of
/// a sparse disk image).
fn file_contains_any(path: &Path, needles: &[Vec<u8>]) -> bool {
    let patterns = path.with_extension("patterns");
    std::fs::write(&patterns, needles.join(&b'\n')).unwrap();
    let status = Command::new("grep")
        .args(["-a", "-F", "-q", "-f"])
        .arg(&patterns)
        .arg(path)
        .status()
        .unwrap();
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "grep failed: {status}"
    );
    status.success()
}

#[test]
fn a_machine_travels_as_a_signed_bundle() {
    let _turn = one_vm_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let grid = GridUser::new();
    let a = Sloop {
        home: dir.path().join("a"),
        env: grid.env(),
    };
    let b = Sloop {
        home: dir.path().join("b"),
        env: grid.env(),
    };
    let _cleanup_a = Cleanup(&a, &[MACHINE]);
    let _cleanup_b = Cleanup(&b, &[IMPORTED]);

    let identifier = demo_cloud(&a);
    a.ok(&[
        "launch",
        &identifier,
        "--name",
        MACHINE,
        "--vcpus",
        "1",
        "--memory",
        "1024",
        "--disk",
        "4",
    ]);
    a.proxy_init();
    a.ok(&["proxy", "attach", MACHINE]);
    let marker = format!("marker-{}", std::process::id());
    a.ok(&[
        "shell",
        MACHINE,
        "--",
        "sh",
        "-c",
        &format!(
            "cloud-init status --wait >/dev/null; echo {marker} | sudo tee /marker >/dev/null; test -s \"$(readlink /tmp/x509up_u1000)\" && sync"
        ),
    ]);

    // A running machine is not copied while it writes.
    let file = dir.path().join("cli-bundle.sloop");
    let refused = a.run(&["machine", "export", MACHINE, "-o", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is running; stop it first") && stderr.contains("--stop"),
        "{stderr}"
    );
    assert!(!file.exists());

    let exported = a.json(&[
        "machine",
        "export",
        MACHINE,
        "-o",
        file.to_str().unwrap(),
        "--stop",
        "--note",
        "marker in /",
    ]);
    assert_eq!(exported["signedBy"], GridUser::DN);
    assert_eq!(exported["manifest"]["note"], "marker in /");
    let verified = a.ok(&["bundle", "verify", file.to_str().unwrap()]);
    assert!(
        verified.contains(&format!("signed by {}", GridUser::DN)),
        "{verified}"
    );
    let report = a.json(&["bundle", "inspect", file.to_str().unwrap()]);
    assert_eq!(report["verified"], true, "{report}");

    // No credential travels: the proxy's lines are nowhere in the changes, read uncompressed
    // (the overlay alone, its base left out), nor in the bundle file.
    let lines = proxy_lines(&grid.path("x509up_test"));
    assert!(lines.len() > 20, "{} lines", lines.len());
    let members = sloop_core::bundle::archive::scan(&file).unwrap();
    let overlay = dir.path().join("overlay.qcow2");
    std::io::copy(
        &mut sloop_core::bundle::archive::overlay_reader(&file, members.overlay).unwrap(),
        &mut std::fs::File::create(&overlay).unwrap(),
    )
    .unwrap();
    let raw = dir.path().join("changes.raw");
    let converted = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(format!(
            r#"json:{{"driver":"qcow2","file":{{"driver":"file","filename":"{}"}},"backing":null}}"#,
            overlay.display()
        ))
        .arg(&raw)
        .output()
        .unwrap();
    assert!(
        converted.status.success(),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    // The check can fail: the marker written beside the proxy is found the same way.
    assert!(file_contains_any(&raw, &[marker.as_bytes().to_vec()]));
    assert!(
        !file_contains_any(&raw, &lines),
        "the proxy is in the overlay"
    );
    assert!(
        !file_contains_any(&file, &lines),
        "the proxy is in the bundle"
    );

    // Deleted here; imported under another home subscribed to the same catalog, whose user is
    // the signer (their own bundle needs no --trust-signer). The base is pulled first.
    a.ok(&["machine", "delete", MACHINE, "--yes"]);
    demo_cloud(&b);
    assert_eq!(b.json(&["image", "list"])[0]["local"]["kind"], "absent");
    let imported = b.json(&[
        "machine",
        "import",
        file.to_str().unwrap(),
        "--name",
        IMPORTED,
    ]);
    assert_eq!(imported["pulledBase"], true);
    assert_eq!(imported["signedBy"], GridUser::DN);
    b.ok(&["machine", "start", IMPORTED]);
    let seen = b.ok(&["shell", IMPORTED, "--", "cat", "/marker"]);
    assert_eq!(seen.trim(), marker);
    // Fresh host keys: the imported machine's pinned key is its own.
    let key = |home: &Path, name: &str| {
        std::fs::read_to_string(home.join(format!("data/machines/{name}/ssh/known_hosts"))).ok()
    };
    assert!(
        key(&a.home, MACHINE).is_none(),
        "deleted machine's folder left"
    );
    assert!(
        !key(&b.home, IMPORTED).unwrap().is_empty(),
        "no pinned host key"
    );

    let sha = exported["manifest"]["base"]["sha512"].as_str().unwrap();
    for home in [&a.home, &b.home] {
        let base = home.join("data/images/store").join(sha);
        assert_eq!(sha512_file(&base), sha, "{}", base.display());
    }
    b.ok(&["machine", "delete", IMPORTED, "--yes"]);
}
