//! Is KVM usable, or must guests run under TCG?
//!
//! `/dev/kvm` existing proves little: on some hosts `KVM_CREATE_VM` succeeds and the guest then
//! spins without running, QEMU aborts setting up the host CPU model, or a guest runs real-mode
//! code and then stops with "KVM internal error ... emulation failure" once its boot loader
//! switches modes (see docs/testing.md). So Sloop boots a 512-byte guest (`probe-guest.S`), with
//! the CPU model its KVM domains use (`host-passthrough`, QEMU's `-cpu host`), that walks through
//! protected, unreal and long mode as boot loaders and kernels do and then writes to QEMU's
//! `isa-debug-exit` port; only a guest that really ran makes QEMU exit with the expected code.
//!
//! The answer is cached per QEMU binary and kernel, so starting a machine does not pay for the
//! probe every time. When a real machine still stops under KVM although the probe passed, the
//! start records a [`Fallback`] in the same cache: machines on this host then run under TCG until
//! QEMU or the kernel change (or `acceleration = "kvm"` in config.toml says otherwise).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::process::Command;

pub use crate::types::Acceleration;

/// The outcome of trying one accelerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trial {
    /// The test guest ran and exited as it should.
    Ran,
    /// QEMU refused to start with it, or the guest reset; QEMU's own words.
    Refused(String),
    /// QEMU started but the guest did not finish in time: KVM that spins, or a guest that KVM
    /// paused (QEMU's words, when it said any: "KVM internal error ...").
    Hung(Option<String>),
}

/// A machine stopped under KVM although the probe passed: this host's machines run under TCG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    /// The machine it happened to.
    pub machine: String,
    /// What libvirt, QEMU or the console said.
    pub reason: String,
    /// RFC 3339.
    pub at: String,
}

/// What the probe found, as cached on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The accelerator machines will use; `None` when not even TCG ran the test guest.
    pub chosen: Option<Acceleration>,
    pub kvm: Trial,
    /// Tried when KVM did not run, or when a machine later stopped under KVM.
    pub tcg: Option<Trial>,
    /// Set when a real machine stopped under KVM after the probe chose it.
    #[serde(default)]
    pub fallback: Option<Fallback>,
    /// What the cached answer is valid for.
    key: String,
}

/// The probe guest, assembled from `probe-guest.S` (a test checks the two match). Writing 0x2a
/// to isa-debug-exit makes QEMU exit with status (0x2a << 1) | 1 = 85.
const PROBE_GUEST: &[u8; 512] = include_bytes!("probe-guest.bin");
const RAN_EXIT_CODE: i32 = 85;
const TRIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Boots the test guest with `accel` (`kvm` or `tcg`).
pub async fn try_accelerator(qemu: &Path, accel: &str) -> std::io::Result<Trial> {
    try_guest(qemu, accel, PROBE_GUEST).await
}

async fn try_guest(qemu: &Path, accel: &str, guest: &[u8; 512]) -> std::io::Result<Trial> {
    let dir = tempfile::tempdir()?;
    let disk = dir.path().join("probe.img");
    fs_err::write(&disk, guest)?;
    // KVM domains run with host-passthrough: try exactly that, since it is what fails on some
    // hosts where a plain KVM guest still runs.
    let cpu: &[&str] = if accel == "kvm" {
        &["-cpu", "host"]
    } else {
        &[]
    };
    let mut child = Command::new(qemu)
        .args([
            "-accel",
            accel,
            "-machine",
            "pc",
            "-nodefaults",
            "-display",
            "none",
        ])
        .args(cpu)
        .args([
            "-no-reboot",
            "-m",
            "16",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=ide", disk.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // Read while QEMU runs: a paused guest's QEMU says why and then waits forever.
    let stderr = child.stderr.take().map(|mut stderr| {
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        })
    });
    let waited = tokio::time::timeout(TRIAL_TIMEOUT, child.wait()).await;
    let status = match waited {
        Err(_) => {
            let _ = child.kill().await;
            let _ = child.wait().await;
            let text = match stderr {
                Some(reader) => reader.await.unwrap_or_default(),
                None => String::new(),
            };
            return Ok(Trial::Hung(error_line(&text).map(str::to_string)));
        }
        Ok(status) => status?,
    };
    if status.code() == Some(RAN_EXIT_CODE) {
        return Ok(Trial::Ran);
    }
    let text = match stderr {
        Some(reader) => reader.await.unwrap_or_default(),
        None => String::new(),
    };
    let said = error_line(&text).unwrap_or("the test guest reset before it finished");
    Ok(Trial::Refused(format!("{said} (exit status {status})")))
}

/// The line of QEMU's output that says why: an error (QEMU may warn before it fails), else the
/// first line it printed.
fn error_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| l.contains("error"))
        .or_else(|| text.lines().map(str::trim).find(|l| !l.is_empty()))
}

/// What the cached answer depends on: the QEMU binary and the running kernel.
fn cache_key(qemu: &Path) -> String {
    let stamp = fs_err::metadata(qemu)
        .ok()
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("{}:{modified}", m.len())
        })
        .unwrap_or_default();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    // The version tag invalidates answers cached by a probe that tried something else.
    format!("3|{}|{stamp}|{kernel}", qemu.display())
}

/// Runs the probe now: KVM first, TCG when KVM does not run a guest.
pub async fn probe(qemu: &Path) -> std::io::Result<Probe> {
    let kvm = if Path::new("/dev/kvm").exists() {
        try_accelerator(qemu, "kvm").await?
    } else {
        Trial::Refused("/dev/kvm does not exist".into())
    };
    let (chosen, tcg) = if kvm == Trial::Ran {
        (Some(Acceleration::Kvm), None)
    } else {
        let tcg = try_accelerator(qemu, "tcg").await?;
        ((tcg == Trial::Ran).then_some(Acceleration::Tcg), Some(tcg))
    };
    tracing::info!(?kvm, ?tcg, ?chosen, "acceleration probed");
    Ok(Probe {
        chosen,
        kvm,
        tcg,
        fallback: None,
        key: cache_key(qemu),
    })
}

/// Records that `machine` stopped under KVM for `reason`: from now on machines on this host run
/// under TCG, until QEMU or the kernel change. Returns the probe as it now stands.
pub async fn record_fallback(
    qemu: &Path,
    cache_dir: &Path,
    machine: &str,
    reason: &str,
    now: time::OffsetDateTime,
) -> std::io::Result<Probe> {
    let mut probe = probe_cached(qemu, cache_dir).await?;
    let fallback = Fallback {
        machine: machine.to_string(),
        reason: reason.to_string(),
        at: crate::time_util::rfc3339(now),
    };
    if !fall_back(&mut probe, qemu, fallback).await? {
        return Err(std::io::Error::other(
            "QEMU could not run the test guest under TCG either",
        ));
    }
    tracing::warn!(
        machine,
        reason,
        "a machine stopped under KVM; this host's machines now run under TCG"
    );
    store(cache_dir, &probe);
    Ok(probe)
}

/// The cached probe when it is still valid for this QEMU and kernel, else a fresh one (cached).
pub async fn probe_cached(qemu: &Path, cache_dir: &Path) -> std::io::Result<Probe> {
    let file = cache_file(cache_dir);
    if let Ok(text) = fs_err::read_to_string(&file)
        && let Ok(cached) = serde_json::from_str::<Probe>(&text)
        && cached.key == cache_key(qemu)
    {
        return Ok(cached);
    }
    let fresh = probe(qemu).await?;
    store(cache_dir, &fresh);
    Ok(fresh)
}

/// A fresh probe (what `sloop doctor` runs), cached. A fallback recorded for this same QEMU and
/// kernel stays: a real guest stopping under KVM is evidence the probe's guest cannot overrule.
pub async fn probe_again(qemu: &Path, cache_dir: &Path) -> std::io::Result<Probe> {
    let mut fresh = probe(qemu).await?;
    let recorded = fs_err::read_to_string(cache_file(cache_dir))
        .ok()
        .and_then(|text| serde_json::from_str::<Probe>(&text).ok())
        .filter(|cached| cached.key == fresh.key)
        .and_then(|cached| cached.fallback);
    if let Some(fallback) = recorded {
        fall_back(&mut fresh, qemu, fallback).await?;
    }
    store(cache_dir, &fresh);
    Ok(fresh)
}

/// Makes `probe` choose TCG because of `fallback`, trying TCG first when the probe has not;
/// false (and `probe` unchanged) when TCG does not run the test guest either.
async fn fall_back(probe: &mut Probe, qemu: &Path, fallback: Fallback) -> std::io::Result<bool> {
    if probe.tcg.is_none() {
        probe.tcg = Some(try_accelerator(qemu, "tcg").await?);
    }
    if probe.tcg != Some(Trial::Ran) {
        return Ok(false);
    }
    probe.chosen = Some(Acceleration::Tcg);
    probe.fallback = Some(fallback);
    Ok(true)
}

/// Remembers a probe's answer for `probe_cached`.
pub fn store(cache_dir: &Path, probe: &Probe) {
    let file = cache_file(cache_dir);
    let written = fs_err::create_dir_all(cache_dir).and_then(|()| {
        let json = serde_json::to_vec_pretty(probe).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(&file, &json, 0o644)
    });
    if let Err(e) = written {
        tracing::warn!("could not cache the acceleration probe: {e}");
    }
}

fn cache_file(cache_dir: &Path) -> PathBuf {
    cache_dir.join("acceleration.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_guest_is_bootable() {
        assert_eq!(&PROBE_GUEST[510..], &[0x55, 0xAA]);
        assert_eq!(RAN_EXIT_CODE, (0x2A << 1) | 1);
    }

    /// The committed binary is what its source assembles to (GNU binutils, from build-essential).
    #[test]
    fn probe_guest_matches_its_source() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/host");
        let out = tempfile::tempdir().unwrap();
        let object = out.path().join("probe.o");
        let binary = out.path().join("probe.bin");
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            let status = std::process::Command::new(program)
                .args(args)
                .status()
                .unwrap_or_else(|e| panic!("{program}: {e}; install binutils"));
            assert!(status.success(), "{program} failed");
        };
        run(
            "as",
            &[
                "--32".as_ref(),
                "-o".as_ref(),
                object.as_os_str(),
                here.join("probe-guest.S").as_os_str(),
            ],
        );
        run(
            "ld",
            &[
                "-m".as_ref(),
                "elf_i386".as_ref(),
                "-Ttext=0x7c00".as_ref(),
                "--oformat=binary".as_ref(),
                "-o".as_ref(),
                binary.as_os_str(),
                object.as_os_str(),
            ],
        );
        assert_eq!(
            std::fs::read(&binary).unwrap(),
            PROBE_GUEST,
            "probe-guest.bin is stale: assemble probe-guest.S as its header says"
        );
    }

    /// Real QEMU under TCG runs the probe guest; a missing accelerator is refused, not hung.
    #[tokio::test]
    async fn tcg_runs_the_probe_guest() {
        let Some(qemu) = crate::host::find_program("qemu-system-x86_64") else {
            panic!("qemu-system-x86_64 is not installed: run scripts/install-deps.sh");
        };
        assert_eq!(try_accelerator(&qemu, "tcg").await.unwrap(), Trial::Ran);
        let refused = try_accelerator(&qemu, "nosuchaccel").await.unwrap();
        assert!(matches!(refused, Trial::Refused(_)), "{refused:?}");
    }

    /// The guest must reach long mode to pass: without EFER.LME (`or eax, 0x100` made
    /// `or eax, 0`) its 64-bit code runs as 32-bit code and it never reports success.
    #[tokio::test]
    async fn a_guest_that_misses_long_mode_does_not_pass() {
        let qemu = crate::host::find_program("qemu-system-x86_64").unwrap();
        let mut broken = *PROBE_GUEST;
        let at = broken
            .windows(5)
            .position(|w| w == [0x0d, 0x00, 0x01, 0x00, 0x00])
            .expect("the probe guest sets EFER.LME with `or eax, 0x100`");
        broken[at + 2] = 0;
        let trial = try_guest(&qemu, "tcg", &broken).await.unwrap();
        assert_ne!(trial, Trial::Ran);
    }
}
