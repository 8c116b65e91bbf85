//! What the CLI's real-VM tests share: the tiny test image, a `sloop` with its own home.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Tests that boot a VM take turns: two guests under software emulation on a small host slow
/// each other down past their timeouts.
pub fn one_vm_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The tiny test image.
pub fn test_image() -> PathBuf {
    sloop_testkit::test_image(sloop_testkit::TestImage::Tiny)
}

pub struct Sloop {
    pub home: PathBuf,
    /// Extra environment for every command (grid variables).
    pub env: Vec<(&'static str, PathBuf)>,
}

impl Sloop {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sloop"));
        command.args(args).env("SLOOP_HOME", &self.home);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "sloop {args:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

/// Deletes the machines left by a failed run, so libvirt does not keep their domains.
pub struct Cleanup<'a>(pub &'a Sloop, pub &'static [&'static str]);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for name in self.1 {
            let _ = self.0.run(&["machine", "delete", name, "--yes"]);
        }
    }
}

pub use sloop_testkit::sha512_file;

impl Sloop {
    /// Subscribes to the demo catalog built from the tiny test image; returns the image's
    /// identifier.
    pub fn demo_image(&self) -> String {
        let image = test_image();
        self.subscribe(&["--demo", "--image", image.to_str().unwrap()])
    }

    /// `sloop catalog add ARGS`; returns the identifier of the first image listed.
    pub fn subscribe(&self, args: &[&str]) -> String {
        self.ok(&[&["catalog", "add"], args].concat());
        self.json(&["image", "list"])[0]["identifier"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `sloop launch` of the tiny image as a small machine `name` (1 vCPU, 256 MiB, 1 GiB),
    /// with `extra` arguments; returns what it printed.
    pub fn launch_tiny(&self, identifier: &str, name: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "launch", identifier, "--name", name, "--vcpus", "1", "--memory", "256", "--disk", "1",
        ];
        args.extend_from_slice(extra);
        self.ok(&args)
    }
}

impl Sloop {
    /// `sloop proxy init` with the test grid user's passphrase on standard input.
    pub fn proxy_init(&self) {
        use std::io::Write as _;
        let mut child = self
            .command(&["proxy", "init", "--passphrase-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(
            child.stdin.take().unwrap(),
            "{}",
            sloop_testkit::GridUser::PASSPHRASE
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
