//! Images as the grid publishes them, through the `sloop` binary: the tiny test image made into
//! an OVA (with an OVF descriptor as VirtualBox exports it), a VMDK, a VDI and a raw `.xz`, and
//! its ISO variant (µCernVM style, built from the same packages), listed in one signed list with
//! `file://` addresses. Each is pulled (its runnable base made), gets a machine, boots, and
//! answers in a shell. The ISO machine boots from the ISO as a read-only CD and keeps its changes
//! on its own empty disk: they survive a restart and travel in a bundle. Crafted files in the same list (a qcow2 naming
//! a host file as its backing file, one keeping its data in a host file, an OVA whose disk
//! member is `../x`, a header claiming 100 TiB) are refused at the pull, with their reason, and
//! no machine is made from them.

use std::path::Path;

use sloop_testkit::{
    Listed, make_ova, run_in as run, signed_list_of, virtual_size, virtualbox_ovf,
};

use crate::support::{Cleanup, Sloop, one_vm_at_a_time, test_image};

#[test]
fn images_in_every_published_format_run_and_crafted_ones_are_refused() {
    let _turn = one_vm_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tiny = test_image();
    let tiny = tiny.to_str().unwrap();

    // The same disk as endorsers publish it.
    sloop_testkit::stream_optimized_vmdk(Path::new(tiny), &d.join("tiny.vmdk"));
    run(
        d,
        "qemu-img",
        &["convert", "-f", "qcow2", "-O", "vdi", tiny, "tiny.vdi"],
    );
    run(
        d,
        "qemu-img",
        &["convert", "-f", "qcow2", "-O", "raw", tiny, "tiny.raw"],
    );
    run(d, "xz", &["-1", "-T0", "tiny.raw"]);
    make_ova(Path::new(tiny), &d.join("tiny.ova"));
    std::fs::copy(sloop_testkit::test_iso(), d.join("tiny.iso")).unwrap();
    // Crafted files.
    std::fs::write(d.join("host-secret"), "not for any guest\n").unwrap();
    let secret = d.join("host-secret");
    let secret = secret.to_str().unwrap();
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
            secret,
            "backed.qcow2",
            "64M",
        ],
    );
    run(
        d,
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={secret}"),
            "external.qcow2",
            "64M",
        ],
    );
    run(
        d,
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "huge.qcow2", "100T"],
    );
    let ovf = virtualbox_ovf("x", virtual_size(Path::new(tiny)), 4096);
    sloop_testkit::tar_as_written(
        &d.join("up.ova"),
        &[
            ("sloop-tiny.ovf", ovf.as_bytes()),
            ("../x", &std::fs::read(d.join("tiny.vmdk")).unwrap()),
        ],
    );

    let listed = |file: &'static str, identifier: &'static str, format: &'static str| {
        (file, identifier, format)
    };
    let good = [
        listed("tiny.ova", "7d1c0e2a-0001-4b1e-9a01-000000000001", "OVA"),
        listed("tiny.vmdk", "7d1c0e2a-0002-4b1e-9a01-000000000002", "VMDK"),
        listed("tiny.vdi", "7d1c0e2a-0003-4b1e-9a01-000000000003", "VDI"),
        listed("tiny.raw.xz", "7d1c0e2a-0004-4b1e-9a01-000000000004", "RAW"),
        listed("tiny.iso", "7d1c0e2a-0009-4b1e-9a01-000000000009", "ISO"),
    ];
    let bad = [
        listed(
            "backed.qcow2",
            "7d1c0e2a-0005-4b1e-9a01-000000000005",
            "QCOW2",
        ),
        listed(
            "external.qcow2",
            "7d1c0e2a-0006-4b1e-9a01-000000000006",
            "QCOW2",
        ),
        listed("up.ova", "7d1c0e2a-0007-4b1e-9a01-000000000007", "OVA"),
        listed(
            "huge.qcow2",
            "7d1c0e2a-0008-4b1e-9a01-000000000008",
            "QCOW2",
        ),
    ];
    let paths: Vec<_> = good.iter().chain(&bad).map(|(f, _, _)| d.join(f)).collect();
    let images: Vec<Listed<'_>> = good
        .iter()
        .chain(&bad)
        .zip(&paths)
        .map(|((file, identifier, format), path)| Listed {
            file: path,
            url: format!("file://{}", path.display()),
            title: file,
            identifier,
            format: Some(format),
        })
        .collect();
    let list_dir = d.join("list");
    std::fs::create_dir(&list_dir).unwrap();
    let (list, anchors) = signed_list_of(&images, &list_dir);

    let sloop = Sloop {
        home: d.join("home"),
        env: Vec::new(),
    };
    let _cleanup = Cleanup(
        &sloop,
        &[
            "fmt-ova",
            "fmt-vmdk",
            "fmt-vdi",
            "fmt-rawxz",
            "fmt-iso",
            "fmt-iso-copy",
        ],
    );
    sloop.ok(&[
        "catalog",
        "add",
        list.to_str().unwrap(),
        "--ca-dir",
        anchors.to_str().unwrap(),
    ]);

    // Refused at the pull, each with its reason, in one line; the certified file is kept and
    // the reason shown by `image list` and `doctor`.
    let reasons = [
        "it names a backing file",
        "it keeps its data in another file",
        "its member \"../x\" is not a plain name inside the archive",
        "its header claims a virtual size of 102400 GiB, more than the limit of 256 GiB",
    ];
    for ((file, identifier, _), reason) in bad.iter().zip(reasons) {
        let pulled = sloop.run(&["image", "pull", identifier]);
        let stderr = String::from_utf8_lossy(&pulled.stderr);
        assert_eq!(pulled.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "image {file} is refused before any machine is made on it: {reason}"
            )),
            "{file}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{file}: {stderr}");
        let create = sloop.run(&["machine", "create", "fmt-bad", "--image", identifier]);
        assert_eq!(create.status.code(), Some(2), "{file}");
        assert!(
            String::from_utf8_lossy(&create.stderr).contains(reason),
            "{file}: {}",
            String::from_utf8_lossy(&create.stderr)
        );
        assert!(!sloop.home.join("data/machines/fmt-bad").exists(), "{file}");
    }
    let listing = sloop.ok(&["image", "list"]);
    assert!(
        listing.contains("not run: it names a backing file"),
        "{listing}"
    );

    // Each published form: pulled and its runnable base made once, keyed by the certified file.
    let derived = [
        "OVA member sloop-tiny-disk001.vmdk, vmdk → qcow2",
        "vmdk → qcow2",
        "vdi → qcow2",
        "unpacked (xz), raw → qcow2",
        "as listed (ISO, booted as a read-only CD)",
    ];
    for ((file, identifier, _), derived) in good.iter().zip(derived) {
        sloop.ok(&["image", "pull", identifier]);
        let images = sloop.json(&["image", "list"]);
        let image = images
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["identifier"] == *identifier)
            .unwrap();
        assert_eq!(image["base"]["kind"], "ready", "{file}: {image}");
        assert_eq!(image["base"]["derived"], derived, "{file}");
        let sha512 = image["sha512"].as_str().unwrap();
        // An ISO as listed is booted as it is: the certified file.
        let base = if *file == "tiny.iso" {
            sloop.home.join(format!("data/images/store/{sha512}"))
        } else {
            sloop.home.join(format!("data/images/bases/{sha512}.qcow2"))
        };
        assert_eq!(image["base"]["path"], base.to_str().unwrap());
        assert!(
            sloop
                .home
                .join(format!("data/images/store/{sha512}"))
                .is_file()
        );
    }
    let doctor = sloop.json(&["doctor"]);
    let images_check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "images")
        .unwrap()
        .clone();
    assert_eq!(images_check["status"], "warning", "{images_check}");
    let detail = images_check["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "tiny.ova 1: certified file ✓, runnable base ready (OVA member sloop-tiny-disk001.vmdk, vmdk → qcow2)"
        ),
        "{detail}"
    );
    assert!(
        detail.contains(
            "backed.qcow2 1: certified file ✓, runnable base refused: it names a backing file"
        ),
        "{detail}"
    );

    // A machine from each, booted, answering in a shell; the guest sees the test image's disk.
    for ((file, identifier, _), name) in
        good.iter()
            .zip(["fmt-ova", "fmt-vmdk", "fmt-vdi", "fmt-rawxz", "fmt-iso"])
    {
        let started = std::time::Instant::now();
        sloop.launch_tiny(identifier, name, &[]);
        let uname = sloop.ok(&["shell", name, "--", "uname", "-s"]);
        assert_eq!(uname, "Linux\n", "{file}");
        eprintln!(
            "{file}: created, booted and answered in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        if *file == "tiny.iso" {
            live_cd_machine(&sloop, d, name);
        }
        sloop.ok(&["machine", "stop", name]);
        sloop.ok(&["machine", "delete", name, "--yes"]);
    }
}

/// The machine booted from the ISO (running): its root is the CD under an overlay kept on its
/// own disk, which names no backing file; a change survives a restart, and travels in a bundle
/// that, imported, boots with it.
fn live_cd_machine(sloop: &Sloop, d: &Path, name: &str) {
    let info = sloop.ok(&["machine", "info", name]);
    assert!(
        info.contains("boots from the ISO image (read-only CD)"),
        "{info}"
    );
    let disk = sloop
        .home
        .join(format!("data/machines/{name}/overlay.qcow2"));
    let disk_info = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&disk)
        .output()
        .unwrap();
    let disk_info = String::from_utf8_lossy(&disk_info.stdout);
    assert!(disk_info.contains("\"virtual-size\""), "{disk_info}");
    assert!(!disk_info.contains("backing-filename"), "{disk_info}");
    let mounts = sloop.ok(&["shell", name, "--", "cat", "/proc/mounts"]);
    assert!(
        mounts.lines().any(|l| l.starts_with("overlay / overlay")),
        "{mounts}"
    );
    assert!(mounts.contains(" iso9660 "), "{mounts}");
    sloop.ok(&[
        "shell",
        name,
        "--",
        "sh",
        "-c",
        "echo kept > /home/sloop/live-marker && sync",
    ]);
    sloop.ok(&["machine", "stop", name]);
    sloop.ok(&["machine", "start", name]);
    let kept = sloop.ok(&["shell", name, "--", "cat", "/home/sloop/live-marker"]);
    assert_eq!(kept, "kept\n");

    let bundle = d.join("live.sloop");
    sloop.ok(&[
        "machine",
        "export",
        name,
        "-o",
        bundle.to_str().unwrap(),
        "--stop",
        "--unsigned",
    ]);
    let inspected = sloop.json(&["bundle", "inspect", bundle.to_str().unwrap()]);
    assert_eq!(inspected["manifest"]["layout"], "live-cd", "{inspected}");
    assert_eq!(inspected["manifest"]["version"], 2, "{inspected}");
    sloop.ok(&[
        "machine",
        "import",
        bundle.to_str().unwrap(),
        "--name",
        "fmt-iso-copy",
        "--allow-unsigned",
    ]);
    sloop.ok(&["machine", "start", "fmt-iso-copy"]);
    let copied = sloop.ok(&[
        "shell",
        "fmt-iso-copy",
        "--",
        "cat",
        "/home/sloop/live-marker",
    ]);
    assert_eq!(copied, "kept\n");
    sloop.ok(&["machine", "stop", "fmt-iso-copy"]);
    sloop.ok(&["machine", "delete", "fmt-iso-copy", "--yes"]);
    sloop.ok(&["machine", "start", name]);
}
