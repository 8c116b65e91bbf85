//! The grid proxy through the `sloop` binary, with a test CA and user made here, on a real
//! tiny VM: `proxy init` from a passphrase-protected key, `proxy attach` places it in the running
//! machine (0600, the user's, readable by `openssl` inside, its chain verified inside against
//! the anchors that came with it), a renewal by another grid tool (`arcproxy`) reaches the
//! machine through `proxy watch` with no other action, a start places it again, `detach`
//! removes it, and no log holds key material or the passphrase.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sloop_testkit::GridUser;

use crate::support::{Cleanup, Sloop, one_vm_at_a_time};

const USER_DN: &str = GridUser::DN;
const PASSPHRASE: &str = GridUser::PASSPHRASE;
const MACHINE: &str = "cli-proxy";

/// The test grid user (CA as an anchor folder, certificate, encrypted key), their proxy's path
/// and a VOMS description folder.
struct Grid {
    user: GridUser,
    anchors: PathBuf,
    certificate: PathBuf,
    key: PathBuf,
    proxy: PathBuf,
}

impl Grid {
    fn new() -> Self {
        let user = GridUser::new();
        let voms_dir = user.path("vomsdir/testvo");
        std::fs::create_dir_all(&voms_dir).unwrap();
        std::fs::write(
            voms_dir.join("voms.example.org.lsc"),
            format!("/DC=invalid/CN=voms.example.org\n{}\n", GridUser::CA_DN),
        )
        .unwrap();
        Self {
            anchors: user.anchors.clone(),
            certificate: user.certificate.clone(),
            key: user.key.clone(),
            proxy: user.path("x509up_test"),
            user,
        }
    }

    fn env(&self) -> Vec<(&'static str, PathBuf)> {
        self.user.env()
    }

    /// A field of the proxy's certificate as `openssl x509` prints it on the host.
    fn host_field(&self, field: &str) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", field, "-in"])
            .arg(&self.proxy)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

fn init_with_passphrase(sloop: &Sloop, extra: &[&str]) -> String {
    init_with_passphrase_in(sloop, extra, &std::env::var("PATH").unwrap_or_default())
}

/// `proxy init` with the passphrase on stdin, finding the grid tools on `path`.
fn init_with_passphrase_in(sloop: &Sloop, extra: &[&str], path: &str) -> String {
    let mut args = vec!["proxy", "init", "--passphrase-stdin"];
    args.extend_from_slice(extra);
    let mut child = sloop
        .command(&args)
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSPHRASE}").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "proxy init: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a login shell command in the machine, as its user.
fn inside(sloop: &Sloop, script: &str) -> String {
    sloop.ok(&["shell", MACHINE, "--", "sh", "-lc", script])
}

struct Watcher(Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn proxy_follows_the_machine() {
    let _turn = one_vm_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let grid = Grid::new();
    let sloop = Sloop {
        home: dir.path().join("home"),
        env: grid.env(),
    };
    let _cleanup = Cleanup(&sloop, &[MACHINE]);
    let identifier = sloop.demo_image();
    sloop.launch_tiny(&identifier, MACHINE, &[]);

    // No proxy yet: attach is refused by name, and nothing is recorded.
    let refused = sloop.run(&["proxy", "attach", MACHINE]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("sloop proxy init"));
    assert_eq!(sloop.json(&["machine", "list"])[0]["proxyAttached"], false);

    let made = init_with_passphrase(&sloop, &["--valid", "2h"]);
    assert!(made.contains(USER_DN), "{made}");
    let info = sloop.json(&["proxy", "info"]);
    assert_eq!(info["identity"], USER_DN);
    assert_eq!(info["chain"]["verified"], true);

    // A line of the user's own in ~/.profile, which detach must leave alone.
    inside(&sloop, "echo 'export MINE=kept' >> ~/.profile");
    let attached = sloop.json(&["proxy", "attach", MACHINE]);
    assert_eq!(attached["path"], "/run/sloop/secrets/x509up_u1000");
    assert_eq!(attached["anchorsSent"], true);
    assert_eq!(sloop.json(&["machine", "list"])[0]["proxyAttached"], true);

    // Inside: the user's 0600 file, the same certificate, the anchors and the environment of a
    // login shell, and a chain that verifies there; the proxy on a memory-only file system (a
    // ramfs: never on the disk, so never in an overlay), linked from /tmp for tools that look
    // there.
    let seen = inside(
        &sloop,
        "stat -c \"%a %U\" \"$X509_USER_PROXY\"; \
         openssl x509 -in \"$X509_USER_PROXY\" -noout -serial; \
         openssl verify -allow_proxy_certs -CApath \"$X509_CERT_DIR\" -untrusted \"$X509_USER_PROXY\" \"$X509_USER_PROXY\"; \
         ls \"$X509_VOMS_DIR/testvo\"; \
         awk '$2 == \"/run/sloop/secrets\" { print $3 }' /proc/mounts; \
         readlink /tmp/x509up_u1000",
    );
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "600 sloop", "{seen}");
    assert_eq!(lines[1], grid.host_field("-serial"), "{seen}");
    assert!(lines[2].ends_with(": OK"), "{seen}");
    assert_eq!(lines[3], "voms.example.org.lsc", "{seen}");
    assert_eq!(lines[4], "ramfs", "{seen}");
    assert_eq!(lines[5], "/run/sloop/secrets/x509up_u1000", "{seen}");

    // A renewal by another grid tool reaches the machine through the watcher, with no action.
    let watcher = Watcher(
        sloop
            .command(&["proxy", "watch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let old_serial = grid.host_field("-serial");
    let mut arcproxy = Command::new("arcproxy")
        .arg("-C")
        .arg(&grid.certificate)
        .arg("-K")
        .arg(&grid.key)
        .arg("-P")
        .arg(&grid.proxy)
        .arg("-T")
        .arg(&grid.anchors)
        .args(["-S", "", "-c", "validityPeriod=3h", "-p", "key=stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("arcproxy (scripts/install-deps.sh installs nordugrid-arc-client)");
    writeln!(arcproxy.stdin.take().unwrap(), "{PASSPHRASE}").unwrap();
    assert!(arcproxy.wait().unwrap().success());
    let renewed = Instant::now();
    let new_serial = grid.host_field("-serial");
    assert_ne!(new_serial, old_serial);
    let mut inside_serial = String::new();
    while renewed.elapsed() < Duration::from_secs(60) {
        inside_serial = inside(
            &sloop,
            "openssl x509 -in \"$X509_USER_PROXY\" -noout -serial",
        )
        .trim()
        .to_string();
        if inside_serial == new_serial {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(inside_serial, new_serial, "the renewal reached the machine");
    eprintln!(
        "renewal seen inside after {:.1} s",
        renewed.elapsed().as_secs_f64()
    );
    drop(watcher);

    // Gone after detach: the proxy, the folder and the profile line; the user's line stays.
    sloop.ok(&["proxy", "detach", MACHINE]);
    let after = inside(
        &sloop,
        "[ -e /tmp/x509up_u1000 ] && echo proxy-left; [ -e ~/.sloop/grid ] && echo folder-left; \
         grep -c 'sloop: grid proxy' ~/.profile; echo \"MINE=$MINE X509_USER_PROXY=$X509_USER_PROXY\"",
    );
    assert_eq!(
        after.lines().collect::<Vec<_>>(),
        ["0", "MINE=kept X509_USER_PROXY="],
        "{after}"
    );

    // Attached while stopped: placed at the next start.
    sloop.ok(&["machine", "stop", MACHINE]);
    let out = sloop.ok(&["proxy", "attach", MACHINE]);
    assert!(out.contains("next start"), "{out}");
    sloop.ok(&["machine", "start", MACHINE]);
    let seen = inside(
        &sloop,
        "openssl x509 -in \"$X509_USER_PROXY\" -noout -serial",
    );
    assert_eq!(seen.trim(), new_serial);

    // No key material or passphrase in any log.
    let key_line = std::fs::read_to_string(&grid.proxy)
        .unwrap()
        .lines()
        .skip_while(|l| !l.contains("PRIVATE KEY"))
        .nth(1)
        .unwrap()
        .to_string();
    for log in logs(&sloop.home) {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !text.contains(PASSPHRASE),
            "passphrase in {}",
            log.display()
        );
        assert!(
            !text.contains(&key_line),
            "key material in {}",
            log.display()
        );
        assert!(!text.contains("PRIVATE KEY"), "a key in {}", log.display());
    }
}

/// Every log file under a Sloop home: Sloop's own and the machines' console logs.
fn logs(home: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![home.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains(".log") {
                out.push(path);
            }
        }
    }
    assert!(
        out.iter()
            .any(|p| p.to_string_lossy().contains("sloop.log")),
        "Sloop's log is among {out:?}"
    );
    out
}

/// Regression (issue 10, bug 1): `proxy init --voms VO` installs the proxy the VOMS tool made.
/// A stand-in `voms-proxy-init` first on `PATH` writes a real proxy (made by the core, with
/// its own serial) to the file Sloop names with `--out`; that proxy must end up at
/// `X509_USER_PROXY`, 0600, replacing the one there before, with nothing left beside it.
#[test]
fn voms_init_installs_the_proxy_the_tool_made() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let grid = Grid::new();
    let sloop = Sloop {
        home: dir.path().join("home"),
        env: grid.env(),
    };
    init_with_passphrase(&sloop, &[]);
    let before = std::fs::read(&grid.proxy).unwrap();

    // The tool's proxy, made apart with the same credentials.
    let ready = dir.path().join("made-by-the-tool.pem");
    let credentials = sloop_core::proxy::UserCredentials {
        certificate: grid.certificate.clone(),
        key: grid.key.clone(),
    };
    sloop_core::proxy::make(
        &sloop_core::proxy::MakeRequest::new(&credentials, ready.clone()),
        Some(PASSPHRASE),
        &grid.anchors,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("voms-proxy-init");
    let asked = bin.join("asked");
    std::fs::write(
        &tool,
        format!(
            "#!/bin/sh\n# Stand-in voms-proxy-init: writes the test's proxy to --out.\necho \"$@\" > '{asked}'\nwhile [ $# -gt 0 ]; do\n  [ \"$1\" = --out ] && out=$2\n  shift\ndone\ncat '{ready}' > \"$out\"\n",
            asked = asked.display(),
            ready = ready.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let listed = || {
        let mut names: Vec<_> = std::fs::read_dir(grid.proxy.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files_before = listed();
    init_with_passphrase_in(&sloop, &["--voms", "testvo"], &path);
    assert!(
        std::fs::read_to_string(&asked)
            .unwrap()
            .starts_with("--voms testvo "),
        "the tool was asked for the VO"
    );
    let installed = std::fs::read(&grid.proxy).unwrap();
    assert_ne!(installed, before, "the old proxy was replaced");
    assert_eq!(installed, std::fs::read(&ready).unwrap(), "by the tool's");
    assert_eq!(
        std::fs::metadata(&grid.proxy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(listed(), files_before, "no file left beside the proxy");
}

/// `proxy watch` runs the core's watch, the app's too: a proxy that ends within the warning
/// time (an hour by default) is reported at once, as a `proxyExpiring` event with `--json`.
#[test]
fn watch_warns_when_the_proxy_nears_its_end() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let grid = Grid::new();
    let sloop = Sloop {
        home: dir.path().join("home"),
        env: grid.env(),
    };
    init_with_passphrase(&sloop, &["--valid", "30m"]);
    let mut watcher = Watcher(
        sloop
            .command(&["--json", "proxy", "watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = watcher.0.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let line = seen
        .recv_timeout(Duration::from_secs(30))
        .expect("proxy watch printed the warning");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["type"], "proxyExpiring", "{line}");
    let left = event["secondsLeft"].as_i64().unwrap();
    assert!((1500..=1800).contains(&left), "{line}");
    assert_eq!(
        event["notAfter"],
        sloop.json(&["proxy", "info"])["notAfter"],
        "{line}"
    );
}
