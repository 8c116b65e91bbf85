//! The host check (`sloop doctor`, the app's status panel): is everything a machine needs here,
//! and if not, which command fixes it.

pub mod acceleration;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::process::Command;
use ts_rs::TS;

pub use crate::programs::{find_program, qemu_binary};
pub use crate::types::{Acceleration, ShareKind};

use crate::config::Config;
use crate::libvirt::Connection;
use crate::paths::Paths;

/// One thing the check looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum CheckId {
    Libvirt,
    Emulator,
    Acceleration,
    DiskTool,
    IsoTool,
    WorkShare,
    Proxy,
    TrustAnchors,
    /// Per stored image: the certified file and its runnable base.
    Images,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum CheckStatus {
    /// Ready.
    Ok,
    /// Works, with a limit the user should know (TCG instead of KVM, no proxy yet).
    Warning,
    /// Machines cannot run until it is fixed.
    Missing,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct Check {
    pub id: CheckId,
    /// What was checked, in a few words.
    pub title: String,
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// The command or step that fixes it, when it is not ok.
    pub fix: Option<String>,
}

/// Everything the host check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct HostReport {
    pub libvirt_uri: String,
    /// How guests will run; `None` when QEMU cannot run one at all.
    pub acceleration: Option<Acceleration>,
    pub work_share: Option<ShareKind>,
    pub checks: Vec<Check>,
    /// True when no check is `missing`: machines can be created and started.
    pub ready: bool,
}

/// The ISO 9660 tool Sloop writes cloud-init seeds with.
pub fn iso_tool() -> Option<PathBuf> {
    ["genisoimage", "xorrisofs", "mkisofs"]
        .into_iter()
        .find_map(find_program)
}

/// The Rust virtiofsd (Debian's `virtiofsd` package puts it in /usr/libexec), when the host has
/// one. QEMU 7.2's old C daemon in /usr/lib/qemu is not used: it needs root and is deprecated.
pub fn virtiofsd() -> Option<PathBuf> {
    find_program("virtiofsd")
}

/// libvirt runs virtiofsd for unprivileged users (qemu:///session) only from 10.0 on.
const VIRTIOFS_SESSION_MIN_LIBVIRT: u32 = 10_000_000;

const INSTALL_QEMU: &str = "sudo apt-get install qemu-system-x86 qemu-utils";

/// One check's result.
pub fn check(
    id: CheckId,
    title: &str,
    status: CheckStatus,
    detail: String,
    fix: Option<&str>,
) -> Check {
    Check {
        id,
        title: title.to_string(),
        status,
        detail,
        fix: fix.map(str::to_string),
    }
}

/// Runs every check of the host itself (the grid proxy's check is the proxy module's, and the
/// Core adds it to the report). Acceleration is tried for real (a guest is booted), which takes a few
/// seconds; pass `fresh = false` to reuse the answer cached for this QEMU and kernel.
pub async fn check_host(paths: &Paths, config: &Config, fresh: bool) -> HostReport {
    let uri = config.libvirt_uri();
    let qemu = qemu_binary();
    let (libvirt, accel, share) = tokio::join!(
        check_libvirt(&uri),
        check_acceleration(qemu.as_deref(), &paths.cache_dir, fresh),
        check_work_share(qemu.as_deref(), &uri),
    );
    let (mut accel_check, mut acceleration) = accel;
    if let Some(chosen) = config.acceleration {
        // The probe still runs, so the user sees what it found beside their choice.
        accel_check.detail = format!(
            "{} by config.toml (acceleration = \"{}\"); the probe found: {}",
            match chosen {
                Acceleration::Kvm => "KVM",
                Acceleration::Tcg => "TCG",
            },
            chosen.config_name(),
            accel_check.detail
        );
        acceleration = Some(chosen);
    }
    let (share_check, work_share) = share;

    let mut checks = vec![libvirt];
    checks.push(match &qemu {
        Some(path) => check(
            CheckId::Emulator,
            "QEMU emulator",
            CheckStatus::Ok,
            path.display().to_string(),
            None,
        ),
        None => check(
            CheckId::Emulator,
            "QEMU emulator",
            CheckStatus::Missing,
            "qemu-system-x86_64 is not installed".into(),
            Some(INSTALL_QEMU),
        ),
    });
    checks.push(accel_check);
    checks.push(match find_program("qemu-img") {
        Some(path) => check(
            CheckId::DiskTool,
            "Disk tool (qemu-img)",
            CheckStatus::Ok,
            path.display().to_string(),
            None,
        ),
        None => check(
            CheckId::DiskTool,
            "Disk tool (qemu-img)",
            CheckStatus::Missing,
            "qemu-img is not installed; it makes each machine's overlay".into(),
            Some("sudo apt-get install qemu-utils"),
        ),
    });
    checks.push(match iso_tool() {
        Some(path) => check(CheckId::IsoTool, "Seed tool (ISO 9660)", CheckStatus::Ok, path.display().to_string(), None),
        None => check(
            CheckId::IsoTool,
            "Seed tool (ISO 9660)",
            CheckStatus::Missing,
            "no genisoimage, xorrisofs or mkisofs; Sloop writes each machine's cloud-init seed with one".into(),
            Some("sudo apt-get install genisoimage"),
        ),
    });
    checks.push(share_check);
    checks.push(check_trust_anchors(
        &config.ca_dir(),
        config.require_crl(),
        time::OffsetDateTime::now_utc(),
    ));

    let ready = checks.iter().all(|c| c.status != CheckStatus::Missing);
    HostReport {
        libvirt_uri: uri,
        acceleration,
        work_share,
        checks,
        ready,
    }
}

async fn check_libvirt(uri: &str) -> Check {
    const TITLE: &str = "libvirt";
    match Connection::open(uri).await {
        Ok(conn) => {
            let version = conn.version().await.unwrap_or_else(|_| "unknown".into());
            check(
                CheckId::Libvirt,
                TITLE,
                CheckStatus::Ok,
                format!("libvirt {version} at {}", conn.uri()),
                None,
            )
        }
        Err(e) => {
            // The fix is part of the error's own message; show libvirt's words as the detail.
            let (detail, fix) = match &e {
                crate::libvirt::LibvirtError::Unreachable { failure, fix, .. } => {
                    (format!("{uri}: {failure}"), fix.to_string())
                }
                other => (
                    other.to_string(),
                    "check the libvirt daemon's log".to_string(),
                ),
            };
            check(
                CheckId::Libvirt,
                TITLE,
                CheckStatus::Missing,
                detail,
                Some(&fix),
            )
        }
    }
}

async fn check_acceleration(
    qemu: Option<&Path>,
    cache_dir: &Path,
    fresh: bool,
) -> (Check, Option<Acceleration>) {
    use acceleration::Trial;
    const TITLE: &str = "Acceleration";
    let Some(qemu) = qemu else {
        return (
            check(
                CheckId::Acceleration,
                TITLE,
                CheckStatus::Missing,
                "cannot try without QEMU".into(),
                Some(INSTALL_QEMU),
            ),
            None,
        );
    };
    let probed = if fresh {
        acceleration::probe_again(qemu, cache_dir).await
    } else {
        acceleration::probe_cached(qemu, cache_dir).await
    };
    let probe = match probed {
        Ok(probe) => probe,
        Err(e) => {
            return (
                check(
                    CheckId::Acceleration,
                    TITLE,
                    CheckStatus::Missing,
                    format!("could not run QEMU: {e}"),
                    Some(INSTALL_QEMU),
                ),
                None,
            );
        }
    };
    let why_not_kvm = match (&probe.fallback, &probe.kvm) {
        (Some(fallback), kvm) => format!(
            "{}machine {} stopped under KVM on {} ({})",
            if *kvm == Trial::Ran {
                "a test guest ran with KVM, but "
            } else {
                ""
            },
            fallback.machine,
            fallback.at,
            fallback.reason
        ),
        (None, Trial::Ran) => String::new(),
        (None, Trial::Hung(None)) => "KVM is present but a test guest did not run".to_string(),
        (None, Trial::Hung(Some(said))) => {
            format!("KVM is present but a test guest did not run ({said})")
        }
        (None, Trial::Refused(reason)) => format!("KVM is not usable ({reason})"),
    };
    let c = match probe.chosen {
        Some(Acceleration::Kvm) => check(
            CheckId::Acceleration,
            TITLE,
            CheckStatus::Ok,
            "KVM: a test guest ran with hardware virtualisation".into(),
            None,
        ),
        Some(Acceleration::Tcg) => {
            let fix = match &probe.kvm {
                Trial::Ran if probe.fallback.is_some() => {
                    "none needed; to try KVM again, set acceleration = \"kvm\" in config.toml (a new QEMU or kernel also retries it)"
                }
                Trial::Refused(reason) if reason.contains("does not exist") => {
                    "for speed: enable virtualisation (VT-x/AMD-V) in the firmware settings, then load kvm_intel or kvm_amd"
                }
                Trial::Refused(reason) if reason.contains("ermission") => {
                    "for speed: let your user use /dev/kvm (sudo adduser $USER kvm), then log in again"
                }
                // KVM is there but broken (often nested virtualisation): nothing the user can
                // fix here; machines still work.
                _ => {
                    "none needed; for speed, run Sloop where KVM works (in a VM: enable nested virtualisation)"
                }
            };
            check(
                CheckId::Acceleration,
                TITLE,
                CheckStatus::Warning,
                format!("{why_not_kvm}; machines run under TCG (software emulation, slower)"),
                Some(fix),
            )
        }
        None => check(
            CheckId::Acceleration,
            TITLE,
            CheckStatus::Missing,
            format!(
                "{why_not_kvm}; and QEMU could not run a test guest under TCG either: {:?}",
                probe.tcg
            ),
            Some("reinstall QEMU: sudo apt-get install --reinstall qemu-system-x86"),
        ),
    };
    (c, probe.chosen)
}

/// How the work directory is shared into machines on this host with libvirt at `uri`.
pub async fn work_share(uri: &str) -> Option<ShareKind> {
    check_work_share(qemu_binary().as_deref(), uri).await.1
}

/// 9p needs QEMU's virtio-9p device; virtiofs needs the Rust virtiofsd, and on
/// qemu:///session a libvirt of 10.0 or later.
async fn check_work_share(qemu: Option<&Path>, uri: &str) -> (Check, Option<ShareKind>) {
    const TITLE: &str = "Work directory sharing";
    if let Some(daemon) = virtiofsd() {
        let libvirt_can = uri.contains("/system")
            || virt::connect::Connect::version().is_ok_and(|v| v >= VIRTIOFS_SESSION_MIN_LIBVIRT);
        if libvirt_can {
            return (
                check(
                    CheckId::WorkShare,
                    TITLE,
                    CheckStatus::Ok,
                    format!("virtiofs ({})", daemon.display()),
                    None,
                ),
                Some(ShareKind::Virtiofs),
            );
        }
    }
    let has_9p = match qemu {
        Some(qemu) => qemu_has_device(qemu, "virtio-9p-pci").await,
        None => false,
    };
    if has_9p {
        (
            check(
                CheckId::WorkShare,
                TITLE,
                CheckStatus::Ok,
                "9p (QEMU virtio-9p); virtiofs would need the virtiofsd package".into(),
                None,
            ),
            Some(ShareKind::NineP),
        )
    } else {
        (
            check(
                CheckId::WorkShare,
                TITLE,
                CheckStatus::Missing,
                "neither virtiofsd nor QEMU's virtio-9p device is available".into(),
                Some(INSTALL_QEMU),
            ),
            None,
        )
    }
}

async fn qemu_has_device(qemu: &Path, device: &str) -> bool {
    let output = Command::new(qemu)
        .args(["-nodefaults", "-machine", "none", "-device", "help"])
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), output).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).contains(&format!("\"{device}\"")),
        _ => false,
    }
}

/// The grid's trust anchors: CA certificates (`<hash>.0`) and their CRLs (`<hash>.r0`), as the
/// IGTF distribution and `fetch-crl` leave them. Missing anchors and CRLs past their next update
/// are warnings that name the fix; with `require_crl`, CAs without a CRL are named too (their
/// lists are refused).
pub fn check_trust_anchors(dir: &Path, require_crl: bool, now: time::OffsetDateTime) -> Check {
    const TITLE: &str = "Grid trust anchors";
    let names: Vec<String> = fs_err::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let anchors: Vec<&str> = names.iter().filter_map(|n| n.strip_suffix(".0")).collect();
    if anchors.is_empty() {
        return check(
            CheckId::TrustAnchors,
            TITLE,
            CheckStatus::Warning,
            format!("no CA certificates (<hash>.0) in {}", dir.display()),
            Some(
                "sudo apt-get install igtf-policy-classic fetch-crl (the IGTF CAs, kept fresh), or set ca_dir in config.toml",
            ),
        );
    }
    let mut stale = Vec::new();
    let mut crls = 0;
    for name in names.iter().filter(|n| n.ends_with(".r0")) {
        crls += 1;
        let next = std::fs::read(dir.join(name)).ok().and_then(|bytes| {
            let crl = openssl::x509::X509Crl::from_pem(&bytes)
                .or_else(|_| openssl::x509::X509Crl::from_der(&bytes))
                .ok()?;
            crl.next_update().map(crate::time_util::asn1_to_offset)
        });
        match next {
            Some(next) if next >= now => {}
            Some(next) => stale.push(format!("{name} (due {})", crate::time_util::rfc3339(next))),
            None => stale.push(format!("{name} (unreadable)")),
        }
    }
    let without_crl = anchors
        .iter()
        .filter(|hash| !names.iter().any(|n| n == &format!("{hash}.r0")))
        .count();
    let mut detail = format!(
        "{} CA certificates in {}, {crls} CRLs",
        anchors.len(),
        dir.display()
    );
    if !stale.is_empty() {
        stale.sort();
        detail.push_str(&format!(
            "; {} past their next update: {}",
            stale.len(),
            stale.join(", ")
        ));
        return check(
            CheckId::TrustAnchors,
            TITLE,
            CheckStatus::Warning,
            detail,
            Some(
                "sudo fetch-crl (refreshes the CRLs; lists signed under a CA with a stale CRL are refused)",
            ),
        );
    }
    if require_crl && without_crl > 0 {
        detail.push_str(&format!(
            "; {without_crl} CAs have no CRL, and require_crl is on: lists under them are refused"
        ));
        return check(
            CheckId::TrustAnchors,
            TITLE,
            CheckStatus::Warning,
            detail,
            Some("sudo fetch-crl"),
        );
    }
    if crls == 0 {
        detail.push_str(" (revocation is not checked until fetch-crl installs them)");
    }
    check(CheckId::TrustAnchors, TITLE, CheckStatus::Ok, detail, None)
}

/// "3 h 12 min", "45 min", "20 s".
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(20), "20 s");
        assert_eq!(human_duration(45 * 60), "45 min");
        assert_eq!(human_duration(3 * 3600 + 12 * 60), "3 h 12 min");
        assert_eq!(human_duration(-5), "0 s");
    }

    #[test]
    fn empty_ca_dir_is_a_warning_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let c = check_trust_anchors(dir.path(), false, time::OffsetDateTime::now_utc());
        assert_eq!(c.status, CheckStatus::Warning);
        assert!(c.fix.unwrap().contains("igtf-policy-classic fetch-crl"));
    }

    /// The whole check (through the Core, as front ends run it) against the test driver: every
    /// check reports, none panics, and a libvirt that answers is reported with its URI.
    #[tokio::test]
    async fn report_against_test_driver() {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::under(home.path().to_path_buf()).unwrap();
        let config = Config {
            libvirt_uri: Some("test:///default".into()),
            ca_dir: Some(home.path().join("no-cas")),
            ..Config::default()
        };
        // SAFETY of the test: SLOOP_LIBVIRT_URI is not set in the test environment.
        assert!(std::env::var_os(crate::config::LIBVIRT_URI_ENV).is_none());
        let core = crate::Core::with_config(paths, Ok(config));
        let report = core.check_host(true).await.unwrap();
        let libvirt = &report.checks[0];
        assert_eq!(libvirt.status, CheckStatus::Ok, "{libvirt:?}");
        assert!(libvirt.detail.contains("test:///default"));
        assert_eq!(report.checks.len(), 9);
        assert_eq!(
            report.checks[7].id,
            CheckId::Proxy,
            "the Core adds the proxy's check"
        );
        assert_eq!(report.checks[8].id, CheckId::Images, "and the images'");
        assert_eq!(report.checks[8].detail, "no images stored yet");
        assert!(
            report.acceleration.is_some(),
            "QEMU must run a guest at least under TCG"
        );
        assert!(home.path().join("cache/acceleration.json").exists());
    }
}
