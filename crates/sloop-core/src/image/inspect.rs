//! An endorsed image is still untrusted as a file: its bytes are the ones the endorser listed,
//! but what a disk image's header says is read by QEMU, which follows backing files, opens
//! external data files and extents and believes the virtual size. Before a runnable base is
//! prepared from a stored image (base.rs), `qemu-img info` reads the header (under a memory and
//! CPU limit, with a timeout), and the image is refused unless it is the format the list says
//! (or, unsaid, one qemu-img recognises by its header: a raw image must be listed as raw, since
//! any bytes probe as raw), stands alone (no backing file, no external data file, a VMDK in one
//! file) and is no larger than the user's limit.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

/// How much address space `qemu-img info` may use on an untrusted header.
const INFO_MEMORY: u64 = 1 << 30;
/// How much CPU time, and how much wall time, it may take.
const INFO_CPU_SECONDS: u64 = 30;
const INFO_TIMEOUT: Duration = Duration::from_secs(60);

/// The disk formats a runnable base is prepared from (qemu-img's names).
const CONVERTIBLE: &[&str] = &["qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc"];

/// The VMDK kinds that hold their data in the one file: the others (monolithicFlat, the split
/// and device kinds) name further files, which could be any file on this computer.
const VMDK_ONE_FILE: &[&str] = &["monolithicSparse", "streamOptimized"];

/// What the header says, once it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// qemu-img's name for the format (`qcow2`).
    pub format: String,
    pub virtual_size: u64,
}

/// Why a stored image may not be opened by QEMU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeImage {
    #[error("qemu-img cannot read its header: {0}")]
    Unreadable(String),
    #[error("qemu-img took too long to read its header (more than {0} s); it is not opened")]
    Timeout(u64),
    #[error("it is a {found} image, but its list says {listed}")]
    NotListedFormat { found: String, listed: String },
    #[error(
        "it is a {0} image, which Sloop cannot run (it runs qcow2, raw, VMDK, VDI, VHD and VHDX disks, OVA archives and ISO images)"
    )]
    NotRunnable(String),
    #[error(
        "its list does not say its format and qemu-img finds no disk header in it; if it is a raw disk, its list must say hv:format RAW"
    )]
    UnsaidRaw,
    #[error(
        "it names a backing file ({0}): a certified image must stand alone, so it is not opened"
    )]
    Backing(String),
    #[error(
        "it keeps its data in another file ({0}): a certified image must stand alone, so it is not opened"
    )]
    DataFile(String),
    #[error(
        "it is a VMDK of kind {kind} that keeps its data in other files ({files}): a certified image must stand alone, so it is not opened"
    )]
    Extents { kind: String, files: String },
    #[error(
        "its header claims a virtual size of {claimed_gib} GiB, more than the limit of {limit_gib} GiB; if that is real, raise max_image_gib in config.toml"
    )]
    TooLarge { claimed_gib: u64, limit_gib: u64 },
}

#[derive(Debug, Deserialize)]
struct Info {
    format: String,
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(rename = "backing-filename")]
    backing: Option<String>,
    #[serde(rename = "full-backing-filename")]
    full_backing: Option<String>,
    #[serde(rename = "format-specific")]
    specific: Option<Specific>,
}

#[derive(Debug, Deserialize)]
struct Specific {
    data: Option<SpecificData>,
}

#[derive(Debug, Deserialize)]
struct SpecificData {
    #[serde(rename = "data-file")]
    data_file: Option<String>,
    /// VMDK only.
    #[serde(rename = "create-type")]
    create_type: Option<String>,
    #[serde(default)]
    extents: Vec<Extent>,
}

#[derive(Debug, Deserialize)]
struct Extent {
    filename: Option<String>,
}

/// Reads the header of `source` (a path, or a `json:` description of a disk inside an archive)
/// and checks it: `listed` is the format it must be (a list's `hv:format`, any case; `None` when
/// unsaid: then probed), `limit` the largest virtual size allowed, in bytes. A source listed as
/// raw is read as raw, never probed.
pub async fn check_source(
    source: &str,
    listed: Option<&str>,
    limit: u64,
) -> Result<Inspected, UnsafeImage> {
    let raw = listed.is_some_and(|l| qemu_name(l) == "raw");
    let info = info(source, raw.then_some("raw")).await?;
    judge(&info, listed, limit)
}

/// qemu-img's name for a list's `hv:format`: lower case, VHD is `vpc`.
/// The disk format whose magic bytes `head` (a file's first bytes) starts with, if any.
pub fn disk_magic(head: &[u8]) -> Option<&'static str> {
    const MAGICS: [(&[u8], &str); 5] = [
        (b"QFI\xfb", "qcow2"),
        (b"KDMV", "VMDK"),
        (b"<<< ", "VDI"),
        (b"conectix", "VHD"),
        (b"vhdxfile", "VHDX"),
    ];
    MAGICS
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, name)| *name)
}

pub fn qemu_name(listed: &str) -> String {
    match listed.to_ascii_lowercase().as_str() {
        "vhd" => "vpc".to_string(),
        other => other.to_string(),
    }
}

async fn info(source: &str, forced: Option<&str>) -> Result<Info, UnsafeImage> {
    let qemu_img = crate::programs::find_program("qemu-img").ok_or_else(|| {
        UnsafeImage::Unreadable(
            "qemu-img is not installed (sudo apt-get install qemu-utils)".into(),
        )
    })?;
    // prlimit (util-linux) caps what a crafted header can make qemu-img allocate or compute.
    let mut command = match crate::programs::find_program("prlimit") {
        Some(prlimit) => {
            let mut c = Command::new(prlimit);
            c.arg(format!("--as={INFO_MEMORY}"))
                .arg(format!("--cpu={INFO_CPU_SECONDS}"))
                .arg("--")
                .arg(qemu_img);
            c
        }
        None => Command::new(qemu_img),
    };
    command.args(["info", "--output=json", "--force-share"]);
    if let Some(format) = forced {
        command.args(["-f", format]);
    }
    command.arg(source).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(INFO_TIMEOUT, command.output())
        .await
        .map_err(|_| UnsafeImage::Timeout(INFO_TIMEOUT.as_secs()))?
        .map_err(|e| UnsafeImage::Unreadable(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("qemu-img failed");
        return Err(UnsafeImage::Unreadable(reason.trim().to_string()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| UnsafeImage::Unreadable(e.to_string()))
}

fn judge(info: &Info, listed: Option<&str>, limit: u64) -> Result<Inspected, UnsafeImage> {
    let found = info.format.to_ascii_lowercase();
    if let Some(listed) = listed
        && qemu_name(listed) != found
    {
        return Err(UnsafeImage::NotListedFormat {
            found,
            listed: listed.to_string(),
        });
    }
    if let Some(backing) = info.full_backing.as_ref().or(info.backing.as_ref()) {
        return Err(UnsafeImage::Backing(backing.clone()));
    }
    let specific = info.specific.as_ref().and_then(|s| s.data.as_ref());
    if let Some(data_file) = specific.and_then(|d| d.data_file.as_ref()) {
        return Err(UnsafeImage::DataFile(data_file.clone()));
    }
    if found == "vmdk" {
        let kind = specific
            .and_then(|d| d.create_type.clone())
            .unwrap_or_else(|| "(unsaid)".into());
        let extents = specific.map_or(0, |d| d.extents.len());
        if !VMDK_ONE_FILE.contains(&kind.as_str()) || extents != 1 {
            let files = specific
                .map(|d| {
                    d.extents
                        .iter()
                        .filter_map(|e| e.filename.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            return Err(UnsafeImage::Extents { kind, files });
        }
    }
    if info.virtual_size > limit {
        return Err(UnsafeImage::TooLarge {
            claimed_gib: info.virtual_size >> 30,
            limit_gib: limit >> 30,
        });
    }
    if !CONVERTIBLE.contains(&found.as_str()) {
        return Err(UnsafeImage::NotRunnable(found));
    }
    if found == "raw" && listed.is_none() {
        return Err(UnsafeImage::UnsaidRaw);
    }
    Ok(Inspected {
        format: found,
        virtual_size: info.virtual_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const GIB: u64 = 1 << 30;

    fn qemu_img(dir: &Path, args: &[&str]) {
        sloop_testkit::run_in(dir, "qemu-img", args);
    }

    async fn check(
        path: &Path,
        listed: Option<&str>,
        limit: u64,
    ) -> Result<Inspected, UnsafeImage> {
        check_source(&path.to_string_lossy(), listed, limit).await
    }

    /// Real headers, made by qemu-img: a plain qcow2 passes; one naming a host file as its backing
    /// file, one keeping its data in a host file, one claiming 100 TiB, and files that are not
    /// what their list says are refused, each with its reason.
    #[tokio::test]
    async fn crafted_headers_are_refused_before_qemu_opens_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("secret"), b"not for the guest").unwrap();
        qemu_img(d, &["create", "-q", "-f", "qcow2", "good.qcow2", "64M"]);
        qemu_img(
            d,
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                &d.join("secret").to_string_lossy(),
                "backed.qcow2",
                "64M",
            ],
        );
        qemu_img(
            d,
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-o",
                &format!("data_file={}", d.join("data.raw").display()),
                "external.qcow2",
                "64M",
            ],
        );
        qemu_img(d, &["create", "-q", "-f", "qcow2", "huge.qcow2", "100T"]);
        qemu_img(d, &["create", "-q", "-f", "raw", "plain.raw", "1M"]);
        std::fs::write(d.join("noise.qcow2"), vec![0x5a; 4096]).unwrap();

        let good = check(&d.join("good.qcow2"), Some("QCOW2"), 256 * GIB)
            .await
            .unwrap();
        assert_eq!(
            good,
            Inspected {
                format: "qcow2".into(),
                virtual_size: 64 << 20
            }
        );
        // Unsaid in the list: the probe decides, and qcow2 runs.
        assert!(check(&d.join("good.qcow2"), None, 256 * GIB).await.is_ok());

        let refusal = |name: &'static str, listed: Option<&'static str>| {
            let path = d.join(name);
            async move { check(&path, listed, 256 * GIB).await.unwrap_err() }
        };
        let backed = refusal("backed.qcow2", Some("qcow2")).await;
        assert!(
            matches!(&backed, UnsafeImage::Backing(file) if file.ends_with("secret")),
            "{backed}"
        );
        let external = refusal("external.qcow2", Some("qcow2")).await;
        assert!(
            matches!(&external, UnsafeImage::DataFile(file) if file.ends_with("data.raw")),
            "{external}"
        );
        let huge = refusal("huge.qcow2", Some("qcow2")).await;
        assert_eq!(
            huge,
            UnsafeImage::TooLarge {
                claimed_gib: 100 * 1024,
                limit_gib: 256
            }
        );
        assert!(
            huge.to_string()
                .contains("raise max_image_gib in config.toml")
        );
        // The limit is the user's: raised, the same header passes.
        assert!(
            check(&d.join("huge.qcow2"), Some("qcow2"), 200 * 1024 * GIB)
                .await
                .is_ok()
        );

        assert_eq!(
            refusal("plain.raw", Some("QCOW2")).await,
            UnsafeImage::NotListedFormat {
                found: "raw".into(),
                listed: "QCOW2".into()
            }
        );
        assert_eq!(refusal("plain.raw", None).await, UnsafeImage::UnsaidRaw);
        // Listed as raw, it is read as raw (never probed) and passes.
        assert_eq!(
            check(&d.join("plain.raw"), Some("RAW"), 256 * GIB)
                .await
                .unwrap()
                .format,
            "raw"
        );
        // Bytes that are no image at all probe as raw: not what the list says.
        assert!(matches!(
            refusal("noise.qcow2", Some("qcow2")).await,
            UnsafeImage::NotListedFormat { .. }
        ));
        let missing = refusal("absent.qcow2", Some("qcow2")).await;
        assert!(matches!(missing, UnsafeImage::Unreadable(_)), "{missing}");
    }
}
