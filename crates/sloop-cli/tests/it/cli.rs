//! The `sloop` binary end to end, as a user or a script runs it: the demo catalog, listing,
//! pulling and removing an image, and one-line errors with exit status 2 for bad input.

use std::path::Path;
use std::process::{Command, Output};

fn sloop(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sloop"))
        .args(args)
        .env("SLOOP_HOME", home)
        .env_remove("SLOOP_DEMO_IMAGE")
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(output)).unwrap()
}

#[test]
fn demo_catalog_image_pull_and_removal_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let image = dir.path().join("tiny.qcow2");
    // A real (empty) qcow2 disk: the pull also checks its header and makes it the runnable base.
    sloop_testkit::run_in(
        dir.path(),
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "tiny.qcow2", "16M"],
    );
    let bytes = std::fs::read(&image).unwrap();

    let out = ok(&sloop(
        &home,
        &[
            "catalog",
            "add",
            "--demo",
            "--image",
            image.to_str().unwrap(),
        ],
    ));
    assert!(out.starts_with("Demo catalog ready: 1 image(s)"), "{out}");

    let images = json(&sloop(&home, &["--json", "image", "list"]));
    let image = &images[0];
    assert_eq!(image["certified"], true);
    assert_eq!(image["local"]["kind"], "absent");
    assert_eq!(image["size"], bytes.len());
    let identifier = image["identifier"].as_str().unwrap().to_string();

    let out = ok(&sloop(&home, &["image", "pull", &identifier[..8]]));
    assert!(
        out.contains("is verified (size and SHA-512 match the signed list)"),
        "{out}"
    );
    let images = json(&sloop(&home, &["--json", "image", "list"]));
    assert_eq!(images[0]["local"]["kind"], "stored");
    let stored = images[0]["local"]["path"].as_str().unwrap();
    assert_eq!(std::fs::read(stored).unwrap(), bytes);
    assert_eq!(images[0]["base"]["kind"], "ready", "{}", images[0]);
    assert_eq!(images[0]["base"]["derived"], "as listed (qcow2)");
    assert_eq!(
        images[0]["base"]["path"], stored,
        "a qcow2 as listed is its own base"
    );

    let catalogs = json(&sloop(&home, &["--json", "catalog", "list"]));
    assert_eq!(catalogs[0]["state"], "verified");
    assert_eq!(
        catalogs[0]["endorser"]["dn"],
        "/DC=invalid/DC=sloop/O=Sloop Demo/CN=Sloop Demo Endorser"
    );

    ok(&sloop(&home, &["image", "rm", &identifier]));
    assert!(!Path::new(stored).exists());
    ok(&sloop(&home, &["catalog", "remove", "demo"]));
    assert_eq!(
        json(&sloop(&home, &["--json", "catalog", "list"])),
        serde_json::json!([])
    );
}

#[test]
fn bad_input_gets_one_line_naming_the_thing_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let cases: [(&[&str], &str); 5] = [
        (
            &["catalog", "add", "ftp://example.org/list"],
            "is not a list address",
        ),
        (
            &["catalog", "add", "https://127.0.0.1:1/list"],
            "cannot connect",
        ),
        (&["catalog", "add", "--demo"], "set SLOOP_DEMO_IMAGE"),
        (
            &["image", "pull", "nothing-like-this"],
            "no image matches \"nothing-like-this\"",
        ),
        (&["catalog", "remove", "nope"], "no catalog named \"nope\""),
    ];
    for (args, expected) in cases {
        let out = sloop(&home, args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("sloop: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn version_completions_and_man_page_come_from_the_command_line_itself() {
    let dir = tempfile::tempdir().unwrap();
    let version = ok(&sloop(dir.path(), &["--version"]));
    let expected = format!("sloop {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    let commit = version
        .trim_end()
        .strip_prefix(&expected)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap();
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );

    // Each shell's script names every subcommand.
    for (shell, marker) in [
        ("bash", "_sloop()"),
        ("zsh", "#compdef sloop"),
        ("fish", "complete -c sloop"),
    ] {
        let script = ok(&sloop(dir.path(), &["completions", shell]));
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..200.min(script.len())]
        );
        for subcommand in ["tutorial", "machine", "catalog", "run"] {
            assert!(
                script.contains(subcommand),
                "{shell} completes no {subcommand}"
            );
        }
    }
    let man = ok(&sloop(dir.path(), &["manpage"]));
    assert!(
        man.contains(".TH sloop 1"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains("Sloop carries your analysis VM"));
    let bad = sloop(dir.path(), &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    // None of it touched the Sloop home.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A certified image is still an untrusted file: one whose qcow2 header names a file of this
/// host as its backing file passes the list's checks (its bytes are the endorser's) but is
/// refused before any machine is made on it.
#[test]
fn an_image_whose_header_names_a_host_file_is_refused_before_a_machine_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let image = dir.path().join("backed.qcow2");
    let out = Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            "/etc/hostname",
        ])
        .arg(&image)
        .arg("64M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    ok(&sloop(
        &home,
        &[
            "catalog",
            "add",
            "--demo",
            "--image",
            image.to_str().unwrap(),
        ],
    ));
    let list = json(&sloop(&home, &["--json", "image", "list"]));
    let identifier = list[0]["identifier"].as_str().unwrap().to_string();
    // The pull verifies the bytes, keeps them, and refuses to make a runnable base of them.
    let pull = sloop(&home, &["image", "pull", &identifier]);
    assert_eq!(pull.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&pull.stderr).contains("it names a backing file (/etc/hostname)"),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );

    let create = sloop(
        &home,
        &["machine", "create", "backed", "--image", &identifier],
    );
    assert_eq!(create.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&create.stderr);
    assert!(
        stderr.contains(
            "is refused before any machine is made on it: it names a backing file (/etc/hostname)"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!home.join("data/machines/backed").exists());
}
