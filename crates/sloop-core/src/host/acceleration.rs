//! Is KVM usable, or must guests run under TCG?
//!
//! `/dev/kvm` existing proves little: on some hosts `KVM_CREATE_VM` succeeds and the guest then
//! spins without running, or QEMU aborts setting up the host CPU model (see docs/testing.md).
//! So Sloop boots a 512-byte guest, with the CPU model its KVM domains use (`host-passthrough`,
//! QEMU's `-cpu host`), that writes to QEMU's `isa-debug-exit` port; only a guest that really
//! ran makes QEMU exit with the expected code. The answer is cached per QEMU binary and kernel, so starting a machine does not pay for
//! the probe every time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::process::Command;
use ts_rs::TS;

/// How guests are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum Acceleration {
    /// Hardware virtualisation: libvirt `<domain type='kvm'>`.
    Kvm,
    /// QEMU's software emulation: libvirt `<domain type='qemu'>`. Works everywhere, slower.
    Tcg,
}

impl Acceleration {
    /// The libvirt domain type for this acceleration.
    /// The word `config.toml` uses for it.
    pub fn config_name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }

    pub fn domain_type(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "qemu",
        }
    }
}

/// The outcome of trying one accelerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trial {
    /// The test guest ran and exited as it should.
    Ran,
    /// QEMU refused to start with it; QEMU's own words.
    Refused(String),
    /// QEMU started but the guest did not finish in time (KVM that spins).
    Hung,
}

/// What the probe found, as cached on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The accelerator machines will use; `None` when not even TCG ran the test guest.
    pub chosen: Option<Acceleration>,
    pub kvm: Trial,
    /// Only tried when KVM did not run.
    pub tcg: Option<Trial>,
    /// What the cached answer is valid for.
    key: String,
}

/// The x86 boot sector: `mov al, 0x2a; out 0xf4, al; cli; hlt; jmp $-1`, signed 0x55AA.
/// Writing 0x2a to isa-debug-exit makes QEMU exit with status (0x2a << 1) | 1 = 85.
fn boot_sector() -> [u8; 512] {
    let mut sector = [0u8; 512];
    sector[..8].copy_from_slice(&[0xB0, 0x2A, 0xE6, 0xF4, 0xFA, 0xF4, 0xEB, 0xFD]);
    sector[510] = 0x55;
    sector[511] = 0xAA;
    sector
}
const RAN_EXIT_CODE: i32 = 85;
const TRIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Boots the test guest with `accel` (`kvm` or `tcg`).
pub async fn try_accelerator(qemu: &Path, accel: &str) -> std::io::Result<Trial> {
    let dir = tempfile::tempdir()?;
    let disk = dir.path().join("probe.img");
    fs_err::write(&disk, boot_sector())?;
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
    let mut stderr = child.stderr.take();
    let waited = tokio::time::timeout(TRIAL_TIMEOUT, child.wait()).await;
    let status = match waited {
        Err(_) => {
            let _ = child.kill().await;
            return Ok(Trial::Hung);
        }
        Ok(status) => status?,
    };
    if status.code() == Some(RAN_EXIT_CODE) {
        return Ok(Trial::Ran);
    }
    let mut text = String::new();
    if let Some(stderr) = stderr.as_mut() {
        use tokio::io::AsyncReadExt;
        let _ = stderr.read_to_string(&mut text).await;
    }
    // QEMU may warn before it fails; the error line says why.
    let first = text
        .lines()
        .find(|l| l.contains("error"))
        .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("no message");
    Ok(Trial::Refused(format!("{first} (exit status {status})")))
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
    format!("2|{}|{stamp}|{kernel}", qemu.display())
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
        key: cache_key(qemu),
    })
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
    fn boot_sector_is_bootable() {
        let sector = boot_sector();
        assert_eq!(&sector[510..], &[0x55, 0xAA]);
        assert_eq!(RAN_EXIT_CODE, (0x2A << 1) | 1);
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
}
