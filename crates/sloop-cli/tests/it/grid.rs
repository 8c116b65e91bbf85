//! Run on grid, through the `sloop` binary, against the project's real test site: an ARC 6.17 CE
//! on loopback (`scripts/arc-ce.sh`, started once and shared by these tests; `scripts/test.sh`
//! stops it), the base served by a real HTTPS server on loopback that logs every request, and a
//! second HTTPS server that accepts only the user's proxy (grid client-certificate auth).
//!
//! The whole path: a machine from a signed list whose image lives at that HTTPS URL gets a marker
//! in its root disk and "user software" (`/usr/local/bin/analyse`); `run submit` sends only its
//! changes; the site fetches and caches the base; the VM job verifies it, boots the machine under
//! QEMU as the site's mapped user, runs the command with the delegated proxy in place; `run
//! fetch` brings back what the command saw and the file it fetched with the proxy, and
//! `--keep-changes` a machine holding what the run wrote. A second, interactive run does not
//! fetch the base again, and its cancel leaves no QEMU; `run clean` removes it at the site.
//! Refusals (no proxy, expired proxy, a stranger, a host certificate from another CA, bad
//! input) leave nothing behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sloop_testkit::TestImage;
use sloop_testkit::serve::FileServer;

use crate::support::{Cleanup, Sloop, one_vm_at_a_time};

const MACHINE: &str = "grid-m";

/// The test CE's `export` lines, as a map.
fn ce() -> &'static HashMap<String, String> {
    static CE: OnceLock<HashMap<String, String>> = OnceLock::new();
    CE.get_or_init(|| {
        // Under the temporary folder, not the checkout: the site's jobs run as `nobody`, who must
        // reach their session folders (a checkout under /root is closed to it).
        let dir = std::env::temp_dir().join("sloop-test-ce");
        let script = sloop_testkit::repo_root().join("scripts/arc-ce.sh");
        let out = std::process::Command::new(&script)
            .arg("start")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} start: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

fn var(name: &str) -> PathBuf {
    PathBuf::from(
        ce().get(name)
            .unwrap_or_else(|| panic!("arc-ce.sh printed no {name}")),
    )
}

/// A Sloop home for the CE's user (or the stranger): the CE's CA as grid trust anchor, the
/// user's certificate and unencrypted key, the proxy in the home's folder.
fn user(dir: &Path, name: &str, who: &str) -> Sloop {
    let (cert, key) = match who {
        "user" => ("SLOOP_TEST_CE_USERCERT", "SLOOP_TEST_CE_USERKEY"),
        _ => ("SLOOP_TEST_CE_STRANGER_CERT", "SLOOP_TEST_CE_STRANGER_KEY"),
    };
    let home = dir.join(name);
    Sloop {
        env: vec![
            ("X509_USER_PROXY", dir.join(format!("{name}-proxy"))),
            ("X509_CERT_DIR", var("X509_CERT_DIR")),
            ("X509_VOMS_DIR", dir.join("vomsdir")),
            ("X509_USER_CERT", var(cert)),
            ("X509_USER_KEY", var(key)),
        ],
        home,
    }
}

fn proxy_init(sloop: &Sloop, valid: &str) {
    let out = sloop
        .command(&["proxy", "init", "--valid", valid, "--passphrase-stdin"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "proxy init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sloop ARGS` must fail with exit status 2 (bad input, refused) and print `needle`.
fn refused(sloop: &Sloop, args: &[&str], needle: &str) -> String {
    let out = sloop.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && stderr.contains(needle),
        "sloop {args:?}: {:?}\n{stderr}",
        out.status
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

/// Subscribes `sloop` to the signed test list at `list` (its CA in `anchors`); the identifier
/// of the one image it lists.
fn subscribe(sloop: &Sloop, list: &Path, anchors: &Path) -> String {
    sloop.subscribe(&[
        list.to_str().unwrap(),
        "--ca-dir",
        anchors.to_str().unwrap(),
    ])
}

#[test]
fn sites_are_asked_with_the_users_proxy_and_refusals_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = ce()["SLOOP_TEST_CE_URL"].clone();
    let a = user(dir.path(), "a", "user");
    refused(
        &a,
        &["site", "add", "test", "http://localhost:1/arex"],
        "https",
    );
    a.ok(&["site", "add", "test", &url]);
    refused(&a, &["site", "add", "test", &url], "test");
    refused(&a, &["site", "info", "test"], "proxy");
    proxy_init(&a, "12h");
    let info = a.json(&["site", "info", "test"]);
    assert_eq!(info["health"], "ok", "{info}");
    assert_eq!(info["offersVmJobs"], true, "{info}");
    assert_eq!(info["identity"], "/DC=org/DC=sloop-test/CN=Sloop Test User");
    assert!(info["queues"][0]["name"].is_string(), "{info}");
    assert!(a.ok(&["site", "rte"]).contains("SLOOP_QEMU"));

    // A stranger (same CA, not authorised at the site).
    let s = user(dir.path(), "s", "stranger");
    s.ok(&["site", "add", "test", &url]);
    proxy_init(&s, "12h");
    refused(&s, &["site", "info", "test"], "refuses");

    // The site's host certificate from a CA this user does not trust.
    let other = sloop_testkit::GridUser::new();
    let mut b = user(dir.path(), "a", "user");
    for (name, value) in &mut b.env {
        if *name == "X509_CERT_DIR" {
            *value = other.anchors.clone();
        }
    }
    refused(&b, &["site", "info", "test"], "certificate");

    // A site that is down.
    a.ok(&["site", "add", "down", "https://localhost:9/arex"]);
    refused(&a, &["site", "info", "down"], "does not answer");
    a.ok(&["site", "remove", "down"]);
    assert_eq!(a.json(&["site", "list"]).as_array().unwrap().len(), 1);
}

/// Polls `run info` until the run has ended (or `until` says stop); the last view.
fn wait_run(sloop: &Sloop, id: &str, limit: Duration, until: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let view = sloop.json(&["run", "info", id]);
        if until(&view) {
            return view;
        }
        if start.elapsed() > limit {
            let logs = sloop.run(&["run", "logs", id]);
            panic!(
                "run {id} after {limit:?}: {view}\nlogs: {}\n{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

fn ended(view: &Value) -> bool {
    matches!(
        view["phase"].as_str(),
        Some("finished" | "failed" | "killed" | "gone")
    )
}

/// PIDs of QEMU processes whose working directory is `session`.
fn qemus_in(session: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.starts_with("qemu-system")
            && std::fs::read_link(entry.path().join("cwd")).ok().as_deref() == Some(session)
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_modified_machine_runs_at_the_site_and_its_outputs_come_back() {
    let _turn = one_vm_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let ce_dir = var("SLOOP_TEST_CE_DIR");
    let (hostcert, hostkey) = (var("SLOOP_TEST_CE_HOSTCERT"), var("SLOOP_TEST_CE_HOSTKEY"));

    // The base at an HTTPS URL of its list (the CE fetches it from there); a grid data server
    // that accepts only the user's proxy.
    let image = sloop_testkit::test_image(TestImage::Cloud);
    let base_server = FileServer::start(
        &hostcert,
        &hostkey,
        None,
        HashMap::from([("base.qcow2".to_string(), image.clone())]),
    );
    let grid_file = dir.path().join("grid-file.txt");
    std::fs::write(&grid_file, "grid data for the test user\n").unwrap();
    let data_server = FileServer::start(
        &hostcert,
        &hostkey,
        Some(&var("SLOOP_TEST_CE_CA_CERT")),
        HashMap::from([("grid-file.txt".to_string(), grid_file)]),
    );
    let (list, anchors) = sloop_testkit::signed_list(
        &image,
        &format!("https://localhost:{}/base.qcow2", base_server.port),
        dir.path(),
    );

    let a = user(dir.path(), "a", "user");
    let _cleanup = Cleanup(&a, &[MACHINE]);
    // A proxy that expires while the run goes: refused before anything is made, at the end.
    let late = user(dir.path(), "late", "user");
    proxy_init(&late, "00:01");

    let identifier = subscribe(&a, &list, &anchors);
    proxy_init(&a, "12h");
    a.ok(&["site", "add", "test", &ce()["SLOOP_TEST_CE_URL"]]);
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
    // The laptop's own pull of the base; from here on, GETs are the site's.
    let pulled = base_server.gets("/base.qcow2");
    assert_eq!(pulled, 1, "{:?}", base_server.requests());
    let marker = format!("marker-{}", std::process::id());
    let analyse = format!(
        r#"#!/bin/sh
# Test "user software": what the machine saw at the site, and a file read with the proxy.
set -e
mkdir -p /analysis/output
{{ cat /marker; cat /analysis/data.txt; openssl x509 -noout -subject -nameopt compat -in "$X509_USER_PROXY"; }} >/analysis/output/seen
printf 'GET /grid-file.txt HTTP/1.0\r\nHost: localhost\r\n\r\n' |
  openssl s_client -quiet -connect 10.0.2.2:{port} -servername localhost -verify_return_error \
    -CApath "$X509_CERT_DIR" -cert "$X509_USER_PROXY" -key "$X509_USER_PROXY" -cert_chain "$X509_USER_PROXY" \
    >/analysis/output/fetched 2>/analysis/output/fetch.log
echo written-at-the-site >"$HOME/from-the-grid"
"#,
        port = data_server.port
    );
    let encoded = analyse
        .bytes()
        .map(|b| format!("\\{b:03o}"))
        .collect::<String>();
    a.ok(&[
        "shell",
        MACHINE,
        "--",
        "sh",
        "-c",
        &format!(
            "cloud-init status --wait >/dev/null; echo {marker} | sudo tee /marker >/dev/null && printf '{encoded}' | sudo tee /usr/local/bin/analyse >/dev/null && sudo chmod 755 /usr/local/bin/analyse && sync"
        ),
    ]);
    a.ok(&["machine", "stop", MACHINE]);
    let data = dir.path().join("data.txt");
    std::fs::write(&data, "input-for-the-run\n").unwrap();

    // Bad input is refused before anything is made.
    refused(
        &a,
        &[
            "run",
            "submit",
            MACHINE,
            "--site",
            "test",
            "--input",
            "/nonexistent/x",
        ],
        "/nonexistent/x",
    );
    refused(
        &a,
        &["run", "submit", MACHINE, "--site", "nowhere"],
        "nowhere",
    );
    assert_eq!(a.json(&["run", "list"]).as_array().unwrap().len(), 0);

    let submitted = a.json(&[
        "run",
        "submit",
        MACHINE,
        "--site",
        "test",
        "--command",
        "analyse",
        "--input",
        data.to_str().unwrap(),
        "--walltime",
        "30m",
        "--memory",
        "1024",
        "--keep-changes",
    ]);
    let id = submitted["id"].as_str().unwrap().to_string();
    assert!(submitted["jobId"].is_string(), "{submitted}");
    let view = wait_run(&a, &id, Duration::from_secs(1200), ended);
    let logs = a.ok(&["run", "logs", &id]);
    assert_eq!(view["phase"], "finished", "{view}\n{logs}");
    assert_eq!(view["exitCode"], 0, "{view}");
    assert!(view["accel"].is_string(), "{view}");

    let out = dir.path().join("out");
    let fetched = a.json(&[
        "run",
        "fetch",
        &id,
        "--to",
        out.to_str().unwrap(),
        "--keep-changes",
    ]);
    let seen = std::fs::read_to_string(out.join("output/seen")).unwrap();
    assert!(seen.contains(&marker), "{seen}");
    assert!(seen.contains("input-for-the-run"), "{seen}");
    assert!(
        seen.contains("/DC=org/DC=sloop-test/CN=Sloop Test User/CN="),
        "the proxy's subject: {seen}"
    );
    let got = std::fs::read_to_string(out.join("output/fetched")).unwrap_or_default();
    assert!(
        got.contains("grid data for the test user"),
        "fetched with the proxy: {got}\n{}",
        std::fs::read_to_string(out.join("output/fetch.log")).unwrap_or_default()
    );
    assert!(
        data_server
            .requests()
            .iter()
            .any(|r| r.client.iter().any(|s| s.contains("Sloop Test User"))),
        "{:?}",
        data_server.requests()
    );
    let console = std::fs::read_to_string(out.join("logs/console.log")).unwrap();
    assert!(
        console.contains("Linux version"),
        "the console shows a boot"
    );
    assert_eq!(
        base_server.gets("/base.qcow2"),
        pulled + 1,
        "the site fetched the base once: {:?}",
        base_server.requests()
    );

    // The run's changes as a new local machine.
    let changed = fetched["changedMachine"].as_str().unwrap().to_string();
    let names: &'static [&'static str] =
        Box::leak(vec![&*Box::leak(changed.clone().into_boxed_str())].into_boxed_slice());
    let _cleanup_changed = Cleanup(&a, names);
    a.ok(&["machine", "start", &changed]);
    let from = a.ok(&["shell", &changed, "--", "cat", "from-the-grid", "/marker"]);
    assert!(
        from.contains("written-at-the-site") && from.contains(&marker),
        "{from}"
    );
    a.ok(&["machine", "delete", &changed, "--yes"]);

    // A second run, interactive: the site has the base in its cache.
    let second = a.json(&[
        "run",
        "submit",
        MACHINE,
        "--site",
        "test",
        "--walltime",
        "30m",
    ]);
    let second_id = second["id"].as_str().unwrap().to_string();
    let job = second["jobId"].as_str().unwrap().to_string();
    let running = wait_run(&a, &second_id, Duration::from_secs(600), |v| {
        ended(v) || v["phase"] == "running"
    });
    assert_eq!(running["phase"], "running", "{running}");
    let session = ce_dir.join("session").join(&job);
    let start = Instant::now();
    while qemus_in(&session).is_empty() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        !qemus_in(&session).is_empty(),
        "no QEMU in {}",
        session.display()
    );
    assert_eq!(
        base_server.gets("/base.qcow2"),
        pulled + 1,
        "the second run is served from the site's cache"
    );
    // A renewed proxy reaches the running job (the VM job shares it into the machine).
    let shared = session.join("grid/x509up");
    let start = Instant::now();
    while !shared.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(1));
    }
    let before = std::fs::read(&shared).unwrap();
    proxy_init(&a, "11h");
    a.ok(&["run", "renew", &second_id]);
    let renewal = session.join("sloop-proxy-renewal.pem");
    let start = Instant::now();
    while std::fs::read(&shared).ok() != std::fs::read(&renewal).ok()
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_secs(1));
    }
    let after = std::fs::read(&shared).unwrap();
    assert_ne!(before, after, "the machine's share got the renewal");
    assert_eq!(Some(&after), std::fs::read(&renewal).ok().as_ref());
    let openssl = |args: &[&str], file: &Path| {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-nameopt", "compat"])
            .args(args)
            .arg("-in")
            .arg(file)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let new_proxy = &a.env[0].1;
    assert_eq!(
        openssl(&["-issuer"], &shared).trim_start_matches("issuer="),
        openssl(&["-subject"], new_proxy).trim_start_matches("subject="),
        "the renewal is signed by the user's new proxy"
    );
    a.ok(&["run", "cancel", &second_id]);
    let start = Instant::now();
    while !qemus_in(&session).is_empty() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        qemus_in(&session).is_empty(),
        "QEMU still runs 30 s after cancel"
    );
    wait_run(&a, &second_id, Duration::from_secs(120), ended);
    a.ok(&["run", "clean", &second_id]);
    assert!(!session.exists(), "clean removes the job at the site");
    assert!(
        a.json(&["run", "list"])
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != second_id.as_str())
    );

    // An expired proxy: refused before anything is made or uploaded.
    let mut expired = user(dir.path(), "a", "user");
    for (name, value) in &mut expired.env {
        if *name == "X509_USER_PROXY" {
            *value = late.env[0].1.clone();
        }
    }
    refused(
        &expired,
        &[
            "run",
            "submit",
            MACHINE,
            "--site",
            "test",
            "--command",
            "true",
        ],
        "expired",
    );
    assert_eq!(a.json(&["run", "list"]).as_array().unwrap().len(), 1);
}

/// A Sloop home in `dir` for the CE's user with a proxy, the test site, and a stopped machine
/// `name` on the tiny image, certified by a list that names it at an HTTPS URL of a server of
/// its own (a URL of its own in the site's cache too). The server must live as long as the runs.
fn tiny_machine(dir: &Path, name: &str) -> (Sloop, FileServer) {
    let image = sloop_testkit::test_image(TestImage::Tiny);
    machine_on(dir, name, &image, "tiny.qcow2", "QCOW2")
}

/// [`tiny_machine`] on the image `file`, served as `served` and listed with `hv:format`
/// `format`.
fn machine_on(
    dir: &Path,
    name: &str,
    file: &Path,
    served: &str,
    format: &str,
) -> (Sloop, FileServer) {
    let server = FileServer::start(
        &var("SLOOP_TEST_CE_HOSTCERT"),
        &var("SLOOP_TEST_CE_HOSTKEY"),
        None,
        HashMap::from([(served.to_string(), file.to_path_buf())]),
    );
    let (list, anchors) = sloop_testkit::signed_list_of(
        &[sloop_testkit::Listed {
            file,
            url: format!("https://localhost:{}/{served}", server.port),
            title: "Grid test image",
            identifier: "0b5e7c1a-2d3f-4a6b-9c8d-7e6f5a4b3c2d",
            format: Some(format),
        }],
        dir,
    );
    let a = user(dir, "a", "user");
    let identifier = subscribe(&a, &list, &anchors);
    a.ok(&["image", "pull", &identifier]);
    a.ok(&[
        "machine",
        "create",
        name,
        "--image",
        &identifier,
        "--vcpus",
        "1",
        "--memory",
        "256",
        "--disk",
        "1",
    ]);
    proxy_init(&a, "12h");
    a.ok(&["site", "add", "test", &ce()["SLOOP_TEST_CE_URL"]]);
    (a, server)
}

/// Runs `command` on machine `name` at the test site (with `extra` submit options), waits for
/// it to finish with exit 0 and fetches the run into `dir/out` (with `extra` too): the command
/// must have printed `marker`. The run's id, its logs and what the fetch answered.
fn run_marker_at_site(
    a: &Sloop,
    name: &str,
    marker: &str,
    command: &str,
    extra: &[&str],
    dir: &Path,
) -> (String, String, serde_json::Value) {
    let mut submit = vec![
        "run",
        "submit",
        name,
        "--site",
        "test",
        "--command",
        command,
        "--walltime",
        "20m",
    ];
    submit.extend_from_slice(extra);
    let run = a.json(&submit);
    let id = run["id"].as_str().unwrap().to_string();
    let view = wait_run(a, &id, Duration::from_secs(1200), ended);
    let logs = a.ok(&["run", "logs", &id]);
    assert_eq!(view["phase"], "finished", "{view}\n{logs}");
    assert_eq!(view["exitCode"], 0, "{view}\n{logs}");
    let out = dir.join("out");
    let mut fetch = vec!["run", "fetch", &id, "--to", out.to_str().unwrap()];
    fetch.extend_from_slice(extra);
    let fetched = a.json(&fetch);
    let said = std::fs::read_to_string(out.join("output/sloop-command.log")).unwrap();
    assert!(
        said.contains(marker),
        "the change made here ran there: {said}"
    );
    (id, logs, fetched)
}

/// Writes a marker (returned) into the user's home on machine `name`'s root disk, here: started,
/// written, stopped.
fn write_marker(a: &Sloop, name: &str) -> String {
    let marker = format!("marker-{name}-{}", std::process::id());
    let _vm = one_vm_at_a_time();
    a.ok(&["machine", "start", name]);
    a.ok(&[
        "shell",
        name,
        "--",
        "sh",
        "-c",
        &format!("echo {marker} >marker && sync"),
    ]);
    a.ok(&["machine", "stop", name]);
    marker
}

/// [`tiny_machine`], for a user whose `~/.ssh` (their own key, known_hosts) is the folder
/// `user-home/.ssh` in `dir`, and who has no SSH agent: the home's path.
fn tiny_machine_with_ssh_home(dir: &Path, name: &str) -> (Sloop, FileServer, PathBuf) {
    let (mut a, server) = tiny_machine(dir, name);
    let home = dir.join("user-home");
    a.env.push(("HOME", home.clone()));
    a.env.push(("SSH_AUTH_SOCK", PathBuf::from("/nonexistent")));
    (a, server, home)
}

/// An endorser's OVA, compressed with xz as some lists publish it: the machine made from it here
/// runs at the site from the same certified file, which the site reads as Sloop did (unpacked,
/// then the disk where it lies in the archive); only the changes travel.
#[test]
fn a_machine_on_a_compressed_ova_runs_at_the_site_from_the_certified_file() {
    const NAME: &str = "grid-ova";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ova = d.join("tiny.ova");
    sloop_testkit::make_ova(&sloop_testkit::test_image(TestImage::Tiny), &ova);
    sloop_testkit::run_in(d, "xz", &["-1", "-T0", "tiny.ova"]);
    let (a, server) = machine_on(d, NAME, &d.join("tiny.ova.xz"), "tiny.ova.xz", "OVA");
    let _cleanup = Cleanup(&a, &[NAME]);
    let pulled = server.gets("/tiny.ova.xz");
    let marker = write_marker(&a, NAME);

    let (id, logs, _) = run_marker_at_site(&a, NAME, &marker, "cat \"$HOME/marker\"", &[], d);
    assert!(logs.contains("unpacking the base image (xz)"), "{logs}");
    assert_eq!(
        server.gets("/tiny.ova.xz"),
        pulled + 1,
        "the site fetched the certified file itself: {:?}",
        server.requests()
    );
    a.ok(&["run", "clean", &id]);
}

/// A machine booted from an ISO (µCernVM style) runs at the site the same way: the site boots
/// the certified ISO as a read-only CD with the machine's own disk (only that travels), and the
/// run's changes come back as a machine that boots from the ISO here with them.
#[test]
fn a_machine_booted_from_an_iso_runs_at_the_site_and_its_changes_come_back() {
    const NAME: &str = "grid-iso";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let iso = d.join("tiny.iso");
    std::fs::copy(sloop_testkit::test_iso(), &iso).unwrap();
    let (a, server) = machine_on(d, NAME, &iso, "tiny.iso", "ISO");
    let _cleanup = Cleanup(&a, &[NAME]);
    let pulled = server.gets("/tiny.iso");
    let marker = write_marker(&a, NAME);

    // The root there is the CD under an overlay, as here.
    let (id, logs, fetched) = run_marker_at_site(
        &a,
        NAME,
        &marker,
        "cat \"$HOME/marker\" && echo written-at-the-site >\"$HOME/from-the-grid\" && grep -c ' / overlay ' /proc/mounts",
        &["--keep-changes"],
        d,
    );
    assert!(
        logs.contains("the base is an ISO image: the machine boots from it as a read-only CD"),
        "{logs}"
    );
    assert_eq!(
        server.gets("/tiny.iso"),
        pulled + 1,
        "the site fetched the certified ISO itself: {:?}",
        server.requests()
    );

    let changed = fetched["changedMachine"].as_str().unwrap().to_string();
    let names: &'static [&'static str] =
        Box::leak(vec![&*Box::leak(changed.clone().into_boxed_str())].into_boxed_slice());
    let _cleanup_changed = Cleanup(&a, names);
    let _vm = one_vm_at_a_time();
    let info = a.ok(&["machine", "info", &changed]);
    assert!(info.contains("boots from the ISO image"), "{info}");
    a.ok(&["machine", "start", &changed]);
    let from = a.ok(&["shell", &changed, "--", "cat", "from-the-grid", "marker"]);
    assert!(
        from.contains("written-at-the-site") && from.contains(&marker),
        "{from}"
    );
    a.ok(&["machine", "delete", &changed, "--yes"]);
    a.ok(&["run", "clean", &id]);
}

/// The VM job itself, run as a site would run it (no CE needed: these refusals come before QEMU
/// starts): with `--base-format iso` a base without an ISO 9660 signature is refused, and so is
/// a machine disk that names a backing file (a host file here), each with exit 65 and its reason.
#[test]
fn the_site_job_refuses_a_false_iso_and_a_live_disk_naming_a_backing_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let job = sloop_testkit::repo_root().join("assets/site/sloop-vm-job.sh");
    let run_job = |base: &Path, disk_args: &[&str]| {
        let session = tempfile::tempdir_in(d).unwrap();
        let s = session.path();
        std::fs::copy(base, s.join("base")).unwrap();
        let mut create = vec!["create", "-q", "-f", "qcow2"];
        create.extend_from_slice(disk_args);
        create.extend(["overlay.qcow2", "1G"]);
        sloop_testkit::run_in(s, "qemu-img", &create);
        std::fs::write(s.join("seed.iso"), b"seed").unwrap();
        std::fs::create_dir(s.join("analysis")).unwrap();
        let out = std::process::Command::new("bash")
            .arg(&job)
            .args([
                "--base-sha512",
                &sloop_testkit::sha512_file(&s.join("base")),
            ])
            .args([
                "--overlay-sha512",
                &sloop_testkit::sha512_file(&s.join("overlay.qcow2")),
            ])
            .args(["--memory", "256", "--cpus", "1", "--walltime", "600"])
            .args(["--base-format", "iso"])
            .current_dir(s)
            .output()
            .unwrap();
        let status = std::fs::read_to_string(s.join("sloop-status")).unwrap_or_default();
        (
            out.status.code(),
            status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let iso = sloop_testkit::test_iso();
    let disk = sloop_testkit::test_image(TestImage::Tiny);

    let (code, status, stderr) = run_job(&disk, &[]);
    assert_eq!(code, Some(65), "{status}");
    assert!(
        status.contains("reason=the base image is not an ISO 9660 image"),
        "{status}"
    );
    assert!(
        stderr.is_empty(),
        "nothing but the job's own lines: {stderr}"
    );

    let (code, status, _) = run_job(&iso, &["-F", "raw", "-b", "/etc/hostname"]);
    assert_eq!(code, Some(65), "{status}");
    assert!(
        status.contains(
            "reason=overlay.qcow2 names a backing file, but a machine booted from an ISO has a disk of its own: refused"
        ),
        "{status}"
    );
}

#[test]
fn a_changed_base_fails_the_job_with_that_reason() {
    const BAD: &str = "grid-bad";
    let dir = tempfile::tempdir().unwrap();
    let (a, server) = tiny_machine(dir.path(), BAD);
    let _cleanup = Cleanup(&a, &[BAD]);

    // The file at the image's URL changes after the laptop pulled it: the site's copy differs.
    let other = dir.path().join("other.qcow2");
    std::fs::write(&other, b"not the endorsed image").unwrap();
    server.set("tiny.qcow2", &other);
    let run = a.json(&[
        "run",
        "submit",
        BAD,
        "--site",
        "test",
        "--command",
        "true",
        "--walltime",
        "10m",
    ]);
    let id = run["id"].as_str().unwrap().to_string();
    let view = wait_run(&a, &id, Duration::from_secs(300), ended);
    assert_eq!(view["phase"], "failed", "{view}");
    let reason = view["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("SHA-512"),
        "the reason names the check: {view}"
    );
    let info = a.ok(&["run", "info", &id]);
    assert!(info.contains("SHA-512"), "{info}");
    a.ok(&["run", "clean", &id]);
}

#[test]
fn a_killed_submit_is_listed_and_can_be_cleaned_or_resumed() {
    const NAME: &str = "grid-kill";
    let dir = tempfile::tempdir().unwrap();
    let ce_dir = var("SLOOP_TEST_CE_DIR");
    let (a, _server) = tiny_machine(dir.path(), NAME);
    let _cleanup = Cleanup(&a, &[NAME]);

    // Sloop killed while it submits: the run is listed and can be cleaned, at the site too.
    let (record, killed_id) = killed_submit(&a, NAME);
    let listed = a.json(&["run", "list"]);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == killed_id.as_str())
        .unwrap_or_else(|| panic!("{killed_id} not listed: {listed}"));
    assert_eq!(entry["phase"], "submitting", "{entry}");
    let job = entry["jobId"].as_str().unwrap().to_string();
    a.ok(&["run", "clean", &killed_id]);
    assert!(!record.exists(), "the record is gone after clean");
    assert!(
        poll(Duration::from_secs(10), Duration::from_millis(200), || {
            !ce_dir.join("session").join(&job).exists()
        }),
        "the job is gone at the site"
    );

    // …or resumed: the half-made job is taken back, the run is submitted again under its id and
    // runs.
    let (_, killed_id) = killed_submit(&a, NAME);
    let first_job = a.json(&["run", "info", &killed_id])["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let resumed = a.json(&["run", "resume", &killed_id]);
    assert_eq!(resumed["id"], killed_id.as_str(), "{resumed}");
    assert_ne!(resumed["jobId"], first_job.as_str(), "{resumed}");
    assert!(
        poll(Duration::from_secs(10), Duration::from_millis(200), || {
            !ce_dir.join("session").join(&first_job).exists()
        }),
        "the half-made job is gone at the site"
    );
    let view = wait_run(&a, &killed_id, Duration::from_secs(300), ended);
    assert_eq!(view["phase"], "finished", "{view}");
    assert_eq!(view["exitCode"], 0, "{view}");
    refused(
        &a,
        &["run", "resume", &killed_id],
        "there is nothing to resume",
    );
    a.ok(&["run", "clean", &killed_id]);
}

/// Starts `sloop run submit MACHINE` and kills it once the job exists at the site, while it
/// uploads a large (sparse) input; the run's folder and id.
fn killed_submit(a: &Sloop, machine: &str) -> (PathBuf, String) {
    let input = a.home.with_file_name("large-input");
    std::fs::File::create(&input)
        .and_then(|f| f.set_len(512 << 20))
        .unwrap();
    let mut child = a
        .command(&[
            "run",
            "submit",
            machine,
            "--site",
            "test",
            "--command",
            "true",
            "--walltime",
            "10m",
            "--input",
            input.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let runs = a.home.join("data/runs");
    let mut record = None;
    let found = poll(Duration::from_secs(120), Duration::from_millis(20), || {
        record = std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| {
                std::fs::read_to_string(e.path().join("run.toml"))
                    .is_ok_and(|t| t.contains("jobId") && !t.contains("submitted"))
            })
            .map(|e| e.path());
        record.is_some()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(found, "no job id recorded in {}", runs.display());
    let record = record.unwrap();
    let id = record.file_name().unwrap().to_string_lossy().to_string();
    (record, id)
}

/// An interactive run (no command): `run shell` logs in to the machine at the site with the
/// run's key and pinned host key (the site's loopback is this computer's); the command's exit
/// status comes back; a renewed proxy reaches the machine; a record pinning another host key is
/// refused; the run's wall time ends it with that reason, and then the shell is refused.
#[test]
fn an_interactive_run_gives_a_shell_until_its_wall_time_ends_it() {
    const NAME: &str = "grid-shell";
    let dir = tempfile::tempdir().unwrap();
    let (a, _server) = tiny_machine(dir.path(), NAME);
    let _cleanup = Cleanup(&a, &[NAME]);

    // A marker in the machine's root disk (the user's home), written here before the submit.
    let marker = write_marker(&a, NAME);

    // Four minutes of wall time: the machine powers off one minute before (the VM job's margin).
    let run = a.json(&["run", "submit", NAME, "--site", "test", "--walltime", "4m"]);
    let id = run["id"].as_str().unwrap().to_string();
    // Not up yet: a short wait ends with that reason, not a hang.
    refused(
        &a,
        &["run", "shell", &id, "--wait", "1s", "--", "true"],
        "did not say where its SSH answers within 1 s",
    );
    refused(
        &a,
        &["run", "shell", &id, "--via", "nobody", "--", "true"],
        "USER@HOST",
    );
    let seen = a.ok(&["run", "shell", &id, "--wait", "4m", "--", "cat", "marker"]);
    assert_eq!(seen.trim(), marker);
    // The user's own OpenSSH, through `sloop ssh-config` (host key pinned by alias).
    let config = a.json(&["ssh-config"])["path"]
        .as_str()
        .unwrap()
        .to_string();
    let own = std::process::Command::new("ssh")
        .args([
            "-F",
            &config,
            "-o",
            "BatchMode=yes",
            &format!("sloop-run-{id}"),
            "cat",
            "marker",
        ])
        .output()
        .unwrap();
    assert!(own.status.success(), "ssh: {own:?}");
    assert_eq!(String::from_utf8_lossy(&own.stdout).trim(), marker);
    // Through a jump host (`--via`), here the relay test server as a bastion.
    {
        let bastion = sloop_testkit::relay::TestRelay::start(false);
        let home = dir.path().join("user-home");
        let user_key = sloop_testkit::relay::user_ssh_dir(&home, &bastion.known_hosts_line());
        bastion.authorize(&user_key);
        let mut jump = a.command(&[
            "run",
            "shell",
            &id,
            "--via",
            &bastion.address(),
            "--",
            "cat",
            "marker",
        ]);
        let seen = jump
            .env("HOME", &home)
            .env("SSH_AUTH_SOCK", "/nonexistent")
            .output()
            .unwrap();
        assert!(seen.status.success(), "--via: {seen:?}\n{}", bastion.log());
        assert_eq!(String::from_utf8_lossy(&seen.stdout).trim(), marker);
        assert!(
            bastion.log().contains("server_request_direct_tcpip"),
            "{}",
            bastion.log()
        );
    }
    let out = a.run(&["run", "shell", &id, "--", "sh", "-c", "echo out; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "out");
    // Standard input reaches the command, as with ssh (`... | sloop run shell RUN -- cat`).
    let mut cat = a
        .command(&["run", "shell", &id, "--", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut cat.stdin.take().unwrap(), b"piped in\n").unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "piped in\n",
        "{out:?}"
    );

    // A renewed proxy is in the machine within 30 s.
    let proxy = format!("/run/sloop/secrets/x509up_u{}", 1000);
    let end_date = || {
        a.ok(&[
            "run", "shell", &id, "--", "openssl", "x509", "-noout", "-enddate", "-in", &proxy,
        ])
    };
    let before = end_date();
    assert!(before.starts_with("notAfter="), "{before}");
    let proxy_until = || {
        a.json(&["run", "info", &id])["proxyUntil"]
            .as_str()
            .map(str::to_string)
    };
    let until_before = proxy_until();
    assert!(
        until_before.is_some(),
        "run info says nothing of the proxy in the machine"
    );
    std::thread::sleep(Duration::from_secs(1));
    proxy_init(&a, "20h");
    a.ok(&["run", "renew", &id]);
    let renewed = Instant::now();
    let mut after = before.clone();
    assert!(
        poll(Duration::from_secs(30), Duration::from_secs(2), || {
            after = end_date();
            after != before
        }),
        "the machine still has the old proxy ({before}) 30 s after the renewal"
    );
    assert!(
        poll(
            Duration::from_secs(30),
            Duration::from_secs(3),
            || proxy_until() != until_before
        ),
        "run info still shows the proxy's old end"
    );
    assert!(a.ok(&["run", "info", &id]).contains("left)"));
    eprintln!(
        "renewed proxy in the machine after {:.1} s: {} -> {}",
        renewed.elapsed().as_secs_f64(),
        before.trim(),
        after.trim()
    );

    // A record that pins another host key: the machine's own is refused, as for local machines.
    refused_with_another_host_key(&a, &id);

    let view = wait_run(&a, &id, Duration::from_secs(400), ended);
    assert_eq!(view["exitCode"], 124, "{view}");
    let reason = view["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("walltime reached"), "{view}");
    refused(&a, &["run", "shell", &id, "--", "true"], "has ended");
    a.ok(&["run", "clean", &id]);
}

/// The same through a relay, a real OpenSSH server on loopback with a test account: the job
/// publishes only the port it holds there (no direct path), `run shell` goes through it; the
/// run's key on the relay may hold a reverse forward and do nothing else (tried with OpenSSH's
/// own client); the key line is gone when the run ends. Relays that would let the key do more,
/// refuse the user, or have an unknown host key are refused at submit, leaving nothing.
#[test]
fn a_run_behind_a_relay_gives_a_shell_and_its_key_can_only_forward() {
    const NAME: &str = "grid-relay";
    let dir = tempfile::tempdir().unwrap();
    let (a, _server, home) = tiny_machine_with_ssh_home(dir.path(), NAME);
    let _cleanup = Cleanup(&a, &[NAME]);
    let submit = |relay: &str| -> Vec<String> {
        [
            "run",
            "submit",
            NAME,
            "--site",
            "test",
            "--walltime",
            "4m",
            "--relay",
            relay,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let refused_by = |relay: &str, needle: &str| {
        let args = submit(relay);
        refused(
            &a,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            needle,
        );
    };

    // Refusals, each before anything reaches the site: a relay that lets a restricted key
    // forward Unix sockets; one that does not know the user; one whose host key is unknown.
    {
        let loose = sloop_testkit::relay::TestRelay::start(true);
        let user_key = sloop_testkit::relay::user_ssh_dir(&home, &loose.known_hosts_line());
        loose.authorize(&user_key);
        refused_by(&loose.address(), "forward Unix sockets");
        assert!(
            !loose.authorized_keys().contains("sloop-run:"),
            "{}",
            loose.authorized_keys()
        );
    }
    let relay = sloop_testkit::relay::TestRelay::start(false);
    let user_key = sloop_testkit::relay::user_ssh_dir(&home, &relay.known_hosts_line());
    refused_by(&relay.address(), "refused the login");
    relay.authorize(&user_key);
    std::fs::write(home.join(".ssh/known_hosts"), "").unwrap();
    refused_by(&relay.address(), "is not in");
    std::fs::write(home.join(".ssh/known_hosts"), relay.known_hosts_line()).unwrap();
    assert_eq!(a.json(&["run", "list"]).as_array().unwrap().len(), 0);

    let marker = write_marker(&a, NAME);
    let args = submit(&relay.address());
    let out = a.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = a.json(&["run", "list"]);
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let job = runs[0]["jobId"].as_str().unwrap().to_string();
    let comment = format!("sloop-run:{id}");
    let line = relay
        .authorized_keys()
        .lines()
        .find(|l| l.ends_with(&comment))
        .unwrap_or_else(|| panic!("no key line for {id}: {}", relay.authorized_keys()))
        .to_string();
    assert!(line.starts_with("restrict,port-forwarding,"), "{line}");
    // The run's key for the relay went to the site and is not kept here.
    assert!(
        !a.home
            .join("data/runs")
            .join(&id)
            .join("ssh/relay")
            .exists()
    );

    // Through the relay (the job publishes only the relayed port).
    let seen = a.ok(&["run", "shell", &id, "--wait", "4m", "--", "cat", "marker"]);
    assert_eq!(seen.trim(), marker);
    let session = var("SLOOP_TEST_CE_DIR").join("session").join(&job);
    let endpoint = std::fs::read_to_string(session.join("sloop-endpoint.json")).unwrap();
    assert!(endpoint.contains("\"relayed\":true"), "{endpoint}");

    // The run's key, as the job has it, tried with OpenSSH's client.
    let key = dir.path().join("run-relay-key");
    std::fs::copy(session.join("sloop-relay.key"), &key).unwrap();
    sloop_testkit::set_mode(&key, 0o600);
    let known = dir.path().join("relay-known-hosts");
    std::fs::write(&known, relay.known_hosts_line()).unwrap();
    let ssh = |extra: &[&str]| {
        let mut command = std::process::Command::new("ssh");
        command
            .args(["-F", "/dev/null", "-i"])
            .arg(&key)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ExitOnForwardFailure=yes",
                "-o",
            ])
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .args([
                "-p",
                &relay.port.to_string(),
                "-l",
                sloop_testkit::relay::ACCOUNT,
            ])
            .args(extra);
        command
    };
    let command = ssh(&["127.0.0.1", "echo", "key-ran-a-command"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&command.stdout).contains("key-ran-a-command"),
        "{command:?}"
    );
    assert!(!command.status.success(), "{command:?}");
    let shell = ssh(&["-tt", "127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!shell.status.success(), "a shell: {shell:?}");
    let local = ssh(&["-W", &format!("127.0.0.1:{}", relay.port), "127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        !local.status.success() && String::from_utf8_lossy(&local.stderr).contains("prohibited"),
        "a local forward: {local:?}"
    );
    let socket = dir.path().join("probe.sock");
    let unix = ssh(&[
        "-N",
        "-R",
        &format!("{}:127.0.0.1:22", socket.display()),
        "127.0.0.1",
    ])
    .output()
    .unwrap();
    assert!(
        !unix.status.success() && !socket.exists(),
        "a Unix-socket forward: {unix:?}"
    );
    let mut reverse = ssh(&["-N", "-v", "-R", "0:127.0.0.1:9", "127.0.0.1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(reverse.stderr.take().unwrap());
    let mut allocated = String::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() == 0 {
            break;
        }
        if line.contains("Allocated port") {
            allocated = line;
            break;
        }
    }
    let _ = reverse.kill();
    let _ = reverse.wait();
    assert!(
        !allocated.is_empty(),
        "the reverse forward was not allocated"
    );

    // A relay port that answers with another host key is refused.
    refused_with_another_host_key(&a, &id);

    // The run ends at its wall time; its key leaves the relay then, and clean leaves nothing.
    let view = wait_run(&a, &id, Duration::from_secs(400), ended);
    assert_eq!(view["exitCode"], 124, "{view}");
    assert!(
        !relay.authorized_keys().contains(&comment),
        "{}",
        relay.authorized_keys()
    );
    refused(&a, &["run", "shell", &id, "--", "true"], "has ended");
    a.ok(&["run", "clean", &id]);
    assert!(
        relay.authorized_keys().contains(user_key.trim()),
        "the user's own key stays"
    );
}

/// `run shell` refuses run `id` while its record pins another host key than the one its machine
/// presents (the record is put back after).
fn refused_with_another_host_key(a: &Sloop, id: &str) {
    let record = a.home.join("data/runs").join(id).join("run.toml");
    let original = std::fs::read_to_string(&record).unwrap();
    let pinned = original
        .lines()
        .find(|l| l.starts_with("hostKey = "))
        .unwrap()
        .to_string();
    let other =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINmEyEZLiNeTuBZaQNr0BQFmIWewkV+4HxZozf288+fN other";
    std::fs::write(
        &record,
        original.replace(&pinned, &format!("hostKey = \"{other}\"")),
    )
    .unwrap();
    refused(a, &["run", "shell", id, "--", "true"], "host key");
    std::fs::write(&record, &original).unwrap();
}

/// Waits until `probe` is true, polling every `step`; false when `limit` passed first.
fn poll(limit: Duration, step: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if probe() {
            return true;
        }
        std::thread::sleep(step);
    }
    false
}

/// The benchmark of `scripts/bench-grid.sh` (ignored by the test run): prints figures, asserts
/// only that each side did its work.
///
/// Bytes: what `run submit` uploads for a stopped machine of the tiny base with about 50 MB of
/// changes (seen in the job's session folder at the site), against the whole disk flattened and
/// compressed (`qemu-img convert -c`, what a full-image upload would send) and against the
/// bundle's overlay plus seed, job script and inputs (the goal: within 1.05× of it).
/// Time: from `run submit` to the run's FINISHED with its command's output, against a plain
/// `arcsub` of a job that runs the same command without a VM, plus the same machine's local boot
/// (`machine start` to SSH), all in this run; states are polled every second on both sides.
#[test]
#[ignore = "a benchmark: scripts/bench-grid.sh runs it"]
fn bench_grid() {
    const NAME: &str = "grid-bench";
    let _turn = one_vm_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let ce_dir = var("SLOOP_TEST_CE_DIR");
    let (a, _server) = tiny_machine(dir.path(), NAME);
    let _cleanup = Cleanup(&a, &[NAME]);
    let machine_dir = a.home.join("data/machines").join(NAME);
    let overlay = machine_dir.join("overlay.qcow2");
    // About 50 MB of changes: half random, half compressible text (as bench-bundle.sh).
    let random = dir.path().join("random");
    let text = dir.path().join("text");
    let mut bytes = vec![0u8; 25 << 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .unwrap();
    std::fs::write(&random, &bytes).unwrap();
    let line =
        b"2026-12-06 03:00:00 event=4711 run=analysis detector=tracker status=ok energy=13.6TeV\n";
    std::fs::write(&text, line.repeat((25 << 20) / line.len())).unwrap();
    let written = std::process::Command::new("qemu-io")
        .arg("-c")
        .arg(format!("write -s {} 520M 25M", random.display()))
        .arg("-c")
        .arg(format!(
            "write -s {} 545M {}",
            text.display(),
            (25 << 20) / line.len() * line.len()
        ))
        .arg(&overlay)
        .output()
        .unwrap();
    assert!(written.status.success(), "{written:?}");

    // The same machine's local boot, to a shell.
    let t = Instant::now();
    a.ok(&["machine", "start", NAME]);
    let boot = t.elapsed();
    a.ok(&["machine", "stop", NAME]);

    let flat = dir.path().join("flat.qcow2");
    // The overlay's own header names its base in the store.
    let converted = std::process::Command::new("qemu-img")
        .args(["convert", "-c", "-O", "qcow2"])
        .arg(&overlay)
        .arg(&flat)
        .output()
        .unwrap();
    assert!(converted.status.success(), "{converted:?}");
    let flat_bytes = std::fs::metadata(&flat).unwrap().len();

    let command = "echo done >/analysis/output/done";
    let t = Instant::now();
    let run = a.json(&[
        "run",
        "submit",
        NAME,
        "--site",
        "test",
        "--command",
        command,
        "--walltime",
        "30m",
        "--memory",
        "256",
    ]);
    let submit_secs = t.elapsed().as_secs_f64();
    let id = run["id"].as_str().unwrap().to_string();
    let session = ce_dir.join("session").join(run["jobId"].as_str().unwrap());
    let mut uploaded = 0;
    for name in ["sloop-vm-job.sh", "overlay.qcow2", "seed.iso"] {
        uploaded += std::fs::metadata(session.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
    }
    let members =
        sloop_core::bundle::archive::scan(&a.home.join("data/runs").join(&id).join("bundle.sloop"))
            .unwrap();
    let bundle_overlay = members.overlay.len;
    let mut last = Value::Null;
    assert!(
        poll(Duration::from_secs(900), Duration::from_secs(1), || {
            last = a.json(&["run", "info", &id]);
            ended(&last)
        }),
        "the run did not end: {last}"
    );
    let sloop_secs = t.elapsed().as_secs_f64();
    assert_eq!(last["phase"], "finished", "{last}");

    // The plain job: the same command, no VM, through ARC's own client.
    let xrsl = dir.path().join("plain.xrsl");
    std::fs::write(
        &xrsl,
        "&(executable=\"/bin/sh\")(arguments=\"-c\" \"echo done >done\")(outputfiles=(\"done\" \"\"))(walltime=\"PT1800S\")\n",
    )
    .unwrap();
    let jobs = dir.path().join("jobs.dat");
    let arc = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .arg("-j")
            .arg(&jobs)
            .envs(a.env.iter().map(|(k, v)| (*k, v.as_os_str())))
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let url = ce()["SLOOP_TEST_CE_URL"].clone();
    let t = Instant::now();
    let submitted = arc(&[
        "arcsub",
        "-C",
        &url,
        "-T",
        "org.nordugrid.arcrest",
        xrsl.to_str().unwrap(),
    ]);
    assert!(submitted.contains("Job submitted"), "{submitted}");
    let mut state = String::new();
    assert!(
        poll(Duration::from_secs(300), Duration::from_secs(1), || {
            state = arc(&["arcstat", "-a"]);
            state.contains("State: Finished") || state.contains("State: Failed")
        }),
        "the plain job did not end: {state}"
    );
    let plain_secs = t.elapsed().as_secs_f64();
    assert!(state.contains("State: Finished"), "{state}");
    let _ = arc(&["arcclean", "-a"]);
    a.ok(&["run", "clean", &id]);

    let mb = |b: u64| b as f64 / 1e6;
    let reference = bundle_overlay + uploaded
        - std::fs::metadata(session.join("overlay.qcow2"))
            .map(|m| m.len())
            .unwrap_or(bundle_overlay);
    println!("bench-grid: machine on the tiny base with about 50 MB of changes");
    println!(
        "  uploaded by run submit        {:>9.1} MB (overlay, seed, job script; no inputs)",
        mb(uploaded)
    );
    println!(
        "  bundle overlay + seed + script {:>8.1} MB   ratio {:.3} (goal <= 1.05)",
        mb(reference),
        uploaded as f64 / reference as f64
    );
    println!(
        "  whole disk flattened (-c)     {:>9.1} MB   uploaded/flattened {:.3}",
        mb(flat_bytes),
        uploaded as f64 / flat_bytes as f64
    );
    println!(
        "  submit (export, delegation, upload) {:>6.1} s",
        submit_secs
    );
    println!("  submit to FINISHED with output {:>8.1} s", sloop_secs);
    println!("  plain arcsub, same command     {:>8.1} s", plain_secs);
    println!(
        "  local boot of the machine      {:>8.1} s",
        boot.as_secs_f64()
    );
    println!(
        "  ratio sloop / (plain + boot)   {:>8.3} (goal <= 1.2)",
        sloop_secs / (plain_secs + boot.as_secs_f64())
    );
}

/// The benchmark of `scripts/bench-shell.sh` (ignored by the test run): prints figures, asserts
/// only that each side did its work. For an interactive run of the tiny machine at the test
/// site, first reached directly, then (a second run) through a relay (a real OpenSSH server on
/// loopback): the time of a whole `run shell RUN -- true` (asking the site where the machine
/// answers, then the login; what Open shell does before the prompt) and the round trip of one
/// keystroke echoed by the machine (`cat` at the far end), each against plain OpenSSH to the same
/// place with the same keys (`ssh`, through the relay as `ssh -J` does it: `-W` in a
/// ProxyCommand with the user's relay key). Medians of 5 logins and 30 keystrokes.
#[test]
#[ignore = "a benchmark: scripts/bench-shell.sh runs it"]
fn bench_run_shell() {
    const NAME: &str = "grid-bench-shell";
    let dir = tempfile::tempdir().unwrap();
    let (a, _server, home) = tiny_machine_with_ssh_home(dir.path(), NAME);
    let _cleanup = Cleanup(&a, &[NAME]);
    let relay = sloop_testkit::relay::TestRelay::start(false);
    let user_key = sloop_testkit::relay::user_ssh_dir(&home, &relay.known_hosts_line());
    relay.authorize(&user_key);
    let user_known = home.join(".ssh/known_hosts");

    println!("bench-shell: the tiny machine in an interactive run at the test site (TCG)");
    for relayed in [false, true] {
        let mut args = vec!["run", "submit", NAME, "--site", "test", "--walltime", "20m"];
        let address = relay.address();
        if relayed {
            args.extend(["--relay", address.as_str()]);
        }
        let id = a.json(&args)["id"].as_str().unwrap().to_string();
        a.ok(&["run", "shell", &id, "--wait", "5m", "--", "true"]);
        a.ok(&["ssh-config"]);
        let run_dir = a.home.join("data/runs").join(&id);
        let endpoint = a.json(&["run", "info", &id]);
        let job = endpoint["jobId"].as_str().unwrap().to_string();
        let published: Value = serde_json::from_str(
            &std::fs::read_to_string(
                var("SLOOP_TEST_CE_DIR")
                    .join("session")
                    .join(&job)
                    .join("sloop-endpoint.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let port = published["port"].as_u64().unwrap().to_string();
        let openssh = |remote: &[&str]| {
            let mut command = std::process::Command::new("ssh");
            command
                .args(["-F", "/dev/null", "-i"])
                .arg(run_dir.join("ssh/client"))
                .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
                .args(["-o", &format!("HostKeyAlias=sloop-run-{id}")])
                .arg("-o")
                .arg(format!(
                    "UserKnownHostsFile={}",
                    run_dir.join("ssh/known_hosts").display()
                ))
                .args(["-p", &port, "-l", "sloop"]);
            if relayed {
                command.arg("-o").arg(format!(
                    "ProxyCommand=ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={} -p {} -l {} -W %h:%p 127.0.0.1",
                    home.join(".ssh/id_ed25519").display(),
                    user_known.display(),
                    relay.port,
                    sloop_testkit::relay::ACCOUNT
                ));
            }
            command.arg("127.0.0.1").args(remote);
            command
        };
        let sloop = |remote: &[&str]| {
            let mut command = a.command(&["run", "shell", &id, "--"]);
            command.args(remote);
            command
        };
        let logins = |make: &dyn Fn(&[&str]) -> std::process::Command| {
            median((0..5).map(|_| {
                let started = Instant::now();
                let out = make(&["true"]).output().unwrap();
                assert!(out.status.success(), "{out:?}");
                started.elapsed().as_secs_f64()
            }))
        };
        let sloop_login = logins(&sloop);
        let ssh_login = logins(&openssh);
        let sloop_echo = echo_round_trip(sloop(&["sh", "-c", "echo ready; exec cat"]));
        // (ssh joins its words with spaces: the remote command goes as one line.)
        let ssh_echo = echo_round_trip(openssh(&["sh -c 'echo ready; exec cat'"]));
        let how = if relayed {
            "through the relay"
        } else {
            "direct"
        };
        println!("  {how}:");
        println!(
            "    login to a command's end  sloop {:>7.3} s   openssh {:>7.3} s   ratio {:.2} (goal <= 1)",
            sloop_login,
            ssh_login,
            sloop_login / ssh_login
        );
        println!(
            "    keystroke echo            sloop {:>7.1} ms  openssh {:>7.1} ms  ratio {:.2} (goal <= 1)",
            sloop_echo * 1e3,
            ssh_echo * 1e3,
            sloop_echo / ssh_echo
        );
        a.ok(&["run", "clean", &id]);
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut all: Vec<f64> = values.collect();
    all.sort_by(f64::total_cmp);
    all[all.len() / 2]
}

/// Median time for one byte and newline sent to `command` (which prints `ready`, then echoes
/// its input) to come back, over 30 keystrokes.
fn echo_round_trip(mut command: std::process::Command) -> f64 {
    use std::io::{BufRead as _, Write as _};
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    output.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let times = (0..30).map(|i| {
        let key = format!("k{i}\n");
        let started = Instant::now();
        input.write_all(key.as_bytes()).unwrap();
        input.flush().unwrap();
        line.clear();
        output.read_line(&mut line).unwrap();
        assert_eq!(line, key);
        started.elapsed().as_secs_f64()
    });
    let result = median(times);
    drop(input);
    let _ = child.wait();
    result
}
