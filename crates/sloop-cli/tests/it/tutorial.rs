//! A tutorial through the `sloop` binary, offline: a trainer's machine on the tiny image (from a
//! list and image served over real HTTPS on loopback) gets a marker in its root disk; `tutorial
//! create` writes the file, its signed bundle and material; `tutorial mirror` writes a classroom
//! mirror. The server is then stopped, so every network source the tutorial names is
//! unreachable. A fresh Sloop home opens the tutorial from the mirror: the machine boots, the
//! marker is there, the material is in /analysis. The student changes things; opening again
//! gives the same machine; `tutorial reset` brings back the start and keeps the old work folder
//! aside. Refusals on the way: a tampered material archive and a bundle pinned to another
//! signer leave nothing behind; `tutorial check` says which sources are gone.

use std::collections::HashMap;
use std::path::Path;

use sloop_core::pki::{self, CertificateSpec};
use sloop_testkit::GridUser;
use sloop_testkit::serve::FileServer;

use crate::support::{Cleanup, Sloop, one_vm_at_a_time, test_image};

const TRAINER: &str = "tutorial-trainer";
const STUDENT: &str = "tutorial-student";

/// An HTTPS server on 127.0.0.1 with a certificate for `localhost` from the grid user's CA,
/// serving `files`.
fn https_server(
    grid: &GridUser,
    dir: &Path,
    files: HashMap<String, std::path::PathBuf>,
) -> FileServer {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let server = pki::issue(
        &CertificateSpec {
            subject: "/DC=invalid/DC=sloop/CN=localhost",
            not_before: now - 3600,
            not_after: now + 86_400,
            ca: false,
            server_names: &["IP:127.0.0.1", "DNS:localhost"],
        },
        Some(&grid.ca),
    )
    .unwrap();
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert, server.certificate.to_pem().unwrap()).unwrap();
    std::fs::write(&key, server.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    FileServer::start(&cert, &key, None, files)
}

fn shell(sloop: &Sloop, name: &str, script: &str) -> String {
    sloop.ok(&["shell", name, "--", "sh", "-c", script])
}

fn refused(sloop: &Sloop, args: &[&str]) -> String {
    let out = sloop.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "sloop {args:?}: {stderr}");
    stderr
}

/// What a trainer made for a test: the course's server (alive until dropped), the trainer's
/// home (its machine deleted), the mirror folder and its tutorial file, the marker in the
/// machine's home, the material folder.
struct Course {
    server: FileServer,
    trainer: Sloop,
    mirror: std::path::PathBuf,
    mirrored: String,
    marker: String,
    material: std::path::PathBuf,
}

/// A trainer in `dir` makes a tutorial from a tiny machine with a marker, on a list and image
/// served over HTTPS, with material, and mirrors it to `dir/usb-stick`.
fn course(dir: &Path, grid: &GridUser) -> Course {
    let image = test_image();
    // The trainer's catalog: a list and image on an HTTPS server of the course's own.
    let server = https_server(
        grid,
        dir,
        HashMap::from([("tiny.qcow2".into(), image.clone())]),
    );
    let base = format!("https://localhost:{}", server.port);
    let (list, anchors) = sloop_testkit::signed_list(&image, &format!("{base}/tiny.qcow2"), dir);
    server.set("list.image_list", &list);
    // The list's anchors also hold the CA of the server's TLS certificate.
    for entry in std::fs::read_dir(&grid.anchors).unwrap().flatten() {
        std::fs::copy(entry.path(), anchors.join(entry.file_name())).unwrap();
    }
    let trainer = Sloop {
        home: dir.join("trainer"),
        env: grid.env(),
    };
    let cleanup = Cleanup(&trainer, &[TRAINER]);
    let identifier = trainer.subscribe(&[
        &format!("{base}/list.image_list"),
        "--ca-dir",
        anchors.to_str().unwrap(),
    ]);
    trainer.launch_tiny(&identifier, TRAINER, &[]);
    let marker = format!("marker-{}", std::process::id());
    shell(&trainer, TRAINER, &format!("echo {marker} >marker && sync"));
    trainer.proxy_init();

    let material = dir.join("material");
    std::fs::create_dir_all(material.join("data")).unwrap();
    std::fs::write(material.join("hello.C"), "void hello() {}\n").unwrap();
    std::fs::write(material.join("data/events.txt"), "42\n").unwrap();
    let welcome = dir.join("welcome.md");
    std::fs::write(
        &welcome,
        "# Welcome to the course\n\nRun `root -l hello.C`.\n",
    )
    .unwrap();
    let course = dir.join("course");
    std::fs::create_dir(&course).unwrap();
    let file = course.join("course.sloop-tutorial");
    let created = trainer.json(&[
        "tutorial",
        "create",
        "--machine",
        TRAINER,
        "-o",
        file.to_str().unwrap(),
        "--material",
        material.to_str().unwrap(),
        "--title",
        "Tiny course",
        "--welcome",
        welcome.to_str().unwrap(),
        "--start",
        "cat /analysis/hello.C",
        "--name",
        STUDENT,
        "--stop",
    ]);
    assert_eq!(created["signedBy"], GridUser::DN, "{created}");
    assert!(course.join("course.sloop").is_file() && course.join("course-material.tar").is_file());
    let again = trainer.run(&[
        "tutorial",
        "create",
        "--machine",
        TRAINER,
        "-o",
        file.to_str().unwrap(),
        "--title",
        "x",
    ]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "never overwritten"
    );

    let mirror = dir.join("usb-stick");
    let mirrored = trainer.json(&[
        "tutorial",
        "mirror",
        file.to_str().unwrap(),
        mirror.to_str().unwrap(),
    ]);
    let mirrored = mirrored["file"].as_str().unwrap().to_string();
    let mut names: Vec<String> = std::fs::read_dir(&mirror)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = vec![
        "course-material.tar".to_string(),
        "course.sloop".into(),
        format!("{STUDENT}.image_list"),
        format!("{STUDENT}.sloop-tutorial"),
        "tiny.qcow2".into(),
    ];
    expected.sort();
    assert_eq!(names, expected);
    trainer.ok(&["machine", "delete", TRAINER, "--yes"]);
    drop(cleanup);
    Course {
        server,
        trainer,
        mirror,
        mirrored,
        marker,
        material,
    }
}

#[test]
fn a_tutorial_opens_offline_from_its_mirror_and_resets_to_its_start() {
    let _turn = one_vm_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let grid = GridUser::new();
    let Course {
        server,
        trainer,
        mirror,
        mirrored,
        marker,
        material,
    } = course(dir.path(), &grid);

    // Every network source is gone from here on.
    drop(server);
    let checked = trainer.run(&["--json", "tutorial", "check", &mirrored]);
    assert_eq!(checked.status.code(), Some(1));
    let items: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap();
    for item in items.as_array().unwrap() {
        let in_mirror = item["location"]
            .as_str()
            .unwrap()
            .starts_with(mirror.to_str().unwrap());
        assert_eq!(item["ok"].as_bool(), Some(in_mirror), "{item}");
    }

    // Bad copies are refused, and leave nothing of the tutorial.
    let bad = dir.path().join("bad");
    copy_dir(&mirror, &bad);
    let bad_file = bad.join(format!("{STUDENT}.sloop-tutorial"));
    let bad_sloop = Sloop {
        home: dir.path().join("bad-home"),
        env: grid.env(),
    };
    std::fs::write(bad.join("course-material.tar"), b"not the material").unwrap();
    let said = refused(
        &bad_sloop,
        &["tutorial", "open", bad_file.to_str().unwrap()],
    );
    assert!(
        said.contains("material") && said.contains("bytes"),
        "{said}"
    );
    std::fs::copy(
        mirror.join("course-material.tar"),
        bad.join("course-material.tar"),
    )
    .unwrap();
    let text = std::fs::read_to_string(&bad_file).unwrap();
    std::fs::write(
        &bad_file,
        text.replace(GridUser::DN, "/DC=invalid/CN=Somebody Else"),
    )
    .unwrap();
    let said = refused(
        &bad_sloop,
        &["tutorial", "open", bad_file.to_str().unwrap()],
    );
    assert!(
        said.contains("signed by") && said.contains("Somebody Else"),
        "{said}"
    );
    assert!(!bad_sloop.home.join("data/tutorials").join(STUDENT).exists());
    assert_eq!(
        bad_sloop
            .json(&["machine", "list"])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // The student: a fresh home, the mirror only.
    let student = Sloop {
        home: dir.path().join("student"),
        env: grid.env(),
    };
    let _cleanup_student = Cleanup(&student, &[STUDENT]);
    let opened = student.json(&["tutorial", "open", &mirrored]);
    assert_eq!(opened["resumed"], false, "{opened}");
    assert_eq!(opened["machine"]["state"], "running", "{opened}");
    assert!(
        opened["tutorial"]["welcome"]
            .as_str()
            .unwrap()
            .contains("Welcome to the course")
    );
    assert_eq!(
        shell(&student, STUDENT, "cat marker"),
        format!("{marker}\n")
    );
    assert_eq!(
        shell(
            &student,
            STUDENT,
            "ls -la /analysis /analysis/data >&2; cat /analysis/hello.C /analysis/data/events.txt"
        ),
        "void hello() {}\n42\n"
    );

    shell(
        &student,
        STUDENT,
        "echo mine >/analysis/mine.txt && echo changed >marker && sync",
    );
    let again = student.json(&["tutorial", "open", &mirrored]);
    assert_eq!(again["resumed"], true, "{again}");
    assert_eq!(
        student.json(&["machine", "list"]).as_array().unwrap().len(),
        1
    );
    assert_eq!(shell(&student, STUDENT, "cat marker"), "changed\n");

    let reset = student.json(&["tutorial", "reset", STUDENT, "--yes"]);
    let aside = Path::new(reset["setAside"].as_str().unwrap()).to_path_buf();
    assert_eq!(
        std::fs::read_to_string(aside.join("mine.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        shell(&student, STUDENT, "cat marker"),
        format!("{marker}\n")
    );
    assert_eq!(
        shell(&student, STUDENT, "ls /analysis"),
        "data\nhello.C\n",
        "the material as it was, without the student's file"
    );
    let listed = student.json(&["tutorial", "list"]);
    assert_eq!(listed[0]["setAside"][0], aside.to_str().unwrap());

    // The trainer's next version (other material) is another tutorial of the same name: refused
    // until the student agrees, then made anew with the work directory set aside again.
    shell(
        &student,
        STUDENT,
        "echo day-one >/analysis/notes.txt && sync",
    );
    let v2 = dir.path().join("v2");
    copy_dir(&mirror, &v2);
    std::fs::write(material.join("day2.C"), "void day2() {}\n").unwrap();
    let tar = v2.join("course-material.tar");
    std::fs::remove_file(&tar).unwrap();
    let packed = std::process::Command::new("tar")
        .args(["--format=ustar", "-C"])
        .arg(&material)
        .args(["-cf"])
        .arg(&tar)
        .args(["hello.C", "day2.C", "data"])
        .status()
        .unwrap();
    assert!(packed.success());
    let v2_file = v2.join(format!("{STUDENT}.sloop-tutorial"));
    let old = std::fs::read_to_string(&v2_file).unwrap();
    let pin = |text: &str, key: &str| -> String {
        let material_part = &text[text.find("[material]").unwrap()..];
        let line = material_part.lines().find(|l| l.starts_with(key)).unwrap();
        line.to_string()
    };
    let text = old
        .replace(
            &pin(&old, "sha512 ="),
            &format!("sha512 = \"{}\"", sloop_testkit::sha512_file(&tar)),
        )
        .replace(
            &pin(&old, "size ="),
            &format!("size = {}", std::fs::metadata(&tar).unwrap().len()),
        );
    std::fs::write(&v2_file, text).unwrap();
    let v2_file = v2_file.to_str().unwrap();
    let said = refused(&student, &["tutorial", "open", v2_file]);
    assert!(
        said.contains("another version") && said.contains("--replace"),
        "{said}"
    );
    assert_eq!(
        shell(&student, STUDENT, "cat /analysis/notes.txt"),
        "day-one\n",
        "nothing changed"
    );
    let replaced = student.json(&["tutorial", "open", v2_file, "--replace"]);
    let aside = Path::new(replaced["setAside"].as_str().unwrap()).to_path_buf();
    assert_eq!(
        std::fs::read_to_string(aside.join("notes.txt")).unwrap(),
        "day-one\n"
    );
    assert_eq!(
        shell(&student, STUDENT, "ls /analysis"),
        "data\nday2.C\nhello.C\n"
    );
    assert_eq!(
        shell(&student, STUDENT, "cat marker"),
        format!("{marker}\n")
    );
    assert_eq!(
        student.json(&["tutorial", "list"])[0]["setAside"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Bytes `sloop ARGS` reads from files under `folder`, as strace sees its reads (every thread).
fn bytes_read_under(sloop: &Sloop, args: &[&str], folder: &Path) -> u64 {
    let trace = folder.with_extension("strace");
    let command = sloop.command(args);
    let program = command.get_program().to_owned();
    let mut traced = std::process::Command::new("strace");
    traced
        .args([
            "-f",
            "-y",
            "-e",
            "trace=read,pread64",
            "-e",
            "signal=none",
            "-o",
        ])
        .arg(&trace)
        .arg(program)
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            traced.env(key, value);
        }
    }
    let out = traced.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("<{}/", folder.display());
    let text = std::fs::read_to_string(&trace).unwrap();
    let total = text
        .lines()
        .filter(|l| l.contains(&prefix))
        .filter_map(|l| {
            l.rsplit_once(" = ")
                .and_then(|(_, n)| n.trim().parse::<u64>().ok())
        })
        .sum();
    std::fs::remove_file(&trace).unwrap();
    total
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A classroom from one mirror (scripts/bench-tutorial.sh runs it): fresh Sloop homes open the
/// same tutorial (verify, import, create; two of them boot to a shell), against plain imports
/// of the full image from the same folder (`cp` then `sha512sum`). Prints the time per student,
/// and the bytes each reads from the mirror (strace, one more student).
#[test]
#[ignore = "a benchmark: scripts/bench-tutorial.sh"]
fn bench_tutorial_classroom() {
    let _turn = one_vm_at_a_time();
    let students: usize = std::env::var("SLOOP_BENCH_STUDENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let grid = GridUser::new();
    let Course {
        server,
        mirror,
        mirrored,
        ..
    } = course(dir.path(), &grid);
    drop(server);
    let image = mirror.join("tiny.qcow2");
    let image_bytes = std::fs::metadata(&image).unwrap().len();
    let mirror_bytes: u64 = std::fs::read_dir(&mirror)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();

    let mut created = Vec::new();
    let mut to_shell = Vec::new();
    for i in 0..students {
        let student = Sloop {
            home: dir.path().join(format!("student-{i}")),
            env: grid.env(),
        };
        let cleanup = Cleanup(&student, &[STUDENT]);
        let boot = i < 2;
        let t0 = std::time::Instant::now();
        if boot {
            student.ok(&["tutorial", "open", &mirrored]);
            shell(&student, STUDENT, "true");
            to_shell.push(t0.elapsed().as_secs_f64());
        } else {
            student.ok(&["tutorial", "open", &mirrored, "--no-start"]);
            created.push(t0.elapsed().as_secs_f64());
        }
        drop(cleanup);
        std::fs::remove_dir_all(&student.home).unwrap();
    }
    let traced = Sloop {
        home: dir.path().join("student-traced"),
        env: grid.env(),
    };
    let cleanup = Cleanup(&traced, &[STUDENT]);
    let read = bytes_read_under(
        &traced,
        &["tutorial", "open", &mirrored, "--no-start"],
        &mirror,
    );
    drop(cleanup);

    let mut plain = Vec::new();
    let copies = dir.path().join("plain");
    std::fs::create_dir(&copies).unwrap();
    for i in 0..students {
        let copy = copies.join(format!("{i}.qcow2"));
        let t0 = std::time::Instant::now();
        let cp = std::process::Command::new("cp")
            .arg(&image)
            .arg(&copy)
            .status()
            .unwrap();
        let sum = std::process::Command::new("sha512sum")
            .arg(&copy)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(cp.success() && sum.success());
        plain.push(t0.elapsed().as_secs_f64());
        std::fs::remove_file(&copy).unwrap();
    }
    let created = median(created);
    let plain = median(plain);
    println!(
        "bench-tutorial: {students} students from one mirror ({mirror_bytes} bytes: image {image_bytes})"
    );
    println!(
        "bench-tutorial: to a created machine (verify, import, create), median {created:.2} s per student"
    );
    println!(
        "bench-tutorial: to a shell (also boot, 2 students under TCG), median {:.2} s",
        median(to_shell)
    );
    println!(
        "bench-tutorial: plain import of the image (cp + sha512sum), median {plain:.3} s; ratio {:.1}",
        created / plain
    );
    println!(
        "bench-tutorial: bytes read from the mirror by one student: {read} ({:.2} x the mirror, {:.2} x the image)",
        read as f64 / mirror_bytes as f64,
        read as f64 / image_bytes as f64
    );
    println!(
        "bench-tutorial: plain import reads the image twice: {} bytes (copy, then checksum of the copy)",
        2 * image_bytes
    );
}
