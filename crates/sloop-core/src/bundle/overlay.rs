//! The overlay inside a bundle: made from a machine's overlay with `qemu-img convert -B` (only
//! the changes, compressed), and checked before anything opens it.
//!
//! A qcow2 file names other files: a backing file (any path, or a `json:` description) and an
//! external data file, which QEMU opens, and may write, the moment it opens the image. So the
//! header is read by Sloop itself first; only a file that names nothing but the base's SHA-512
//! is then shown to `qemu-img info` (which never opens backing files), under a time limit.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::archive::Span;
use crate::progress::{Meter, Reporter};
use crate::qemu_img::last_line;

/// How long `qemu-img info` may take on a header-sized read.
const INFO_WITHIN: Duration = Duration::from_secs(30);

/// What is wrong with an overlay. One line each, naming the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverlayProblem {
    #[error("is not a qcow2 image (no qcow2 header)")]
    NotQcow2,
    #[error("is qcow2 version {0}; only versions 2 and 3 are read")]
    Version(u32),
    #[error("is encrypted")]
    Encrypted,
    #[error("uses an external data file; a bundle's overlay holds its own data")]
    ExternalData,
    #[error("is marked corrupt")]
    Corrupt,
    #[error("uses qcow2 features this Sloop does not know (bits {0:#x})")]
    UnknownFeatures(u64),
    #[error("has internal snapshots; a bundle's overlay has none")]
    Snapshots,
    #[error("has no backing file; a bundle's overlay names its base by SHA-512")]
    NoBacking,
    #[error(
        "names backing file {0:?}, not the base's SHA-512; a bundle's overlay never points at a file"
    )]
    ForeignBacking(String),
    #[error("has a damaged header ({0})")]
    Damaged(&'static str),
    #[error("is {found} bytes large as a disk, the manifest says {expected}")]
    VirtualSize { found: u64, expected: u64 },
    #[error("was refused by qemu-img info: {0}")]
    QemuImg(String),
}

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub virtual_size: u64,
    pub backing: Option<String>,
}

const MAGIC: &[u8; 4] = b"QFI\xfb";
const EXT_DATA_FILE: u32 = 0x4441_5441;
const EXT_ENCRYPTION: u32 = 0x0537_be77;
/// Incompatible feature bits: dirty, corrupt, external data file, compression type, extended L2.
const KNOWN_INCOMPATIBLE: u64 = 0b1_1111;

fn be32(bytes: &[u8], at: usize) -> Result<u32, OverlayProblem> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(OverlayProblem::Damaged("header cut short"))
}

fn be64(bytes: &[u8], at: usize) -> Result<u64, OverlayProblem> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(OverlayProblem::Damaged("header cut short"))
}

/// How many leading bytes [`parse_header`] needs: the first cluster holds header, extensions and
/// the backing file name (qemu-img keeps them there; a larger header is refused).
pub const HEADER_BYTES: usize = 64 * 1024;

/// Reads a qcow2 header from the first bytes of a file and refuses anything that would make
/// QEMU open another file, or that Sloop does not need.
pub fn parse_header(bytes: &[u8], base_sha512: &str) -> Result<Header, OverlayProblem> {
    let header = parse_any(bytes)?;
    match &header.backing {
        None => Err(OverlayProblem::NoBacking),
        Some(name) if name != base_sha512 => Err(OverlayProblem::ForeignBacking(name.clone())),
        Some(_) => Ok(header),
    }
}

/// Like [`parse_header`], for a layer that must name no backing file at all (a grid run's
/// changes, whose chain Sloop sets itself).
pub fn parse_unbacked(bytes: &[u8]) -> Result<Header, OverlayProblem> {
    let header = parse_any(bytes)?;
    match &header.backing {
        None => Ok(header),
        Some(name) => Err(OverlayProblem::ForeignBacking(name.clone())),
    }
}

fn parse_any(bytes: &[u8]) -> Result<Header, OverlayProblem> {
    if bytes.get(..4) != Some(MAGIC) {
        return Err(OverlayProblem::NotQcow2);
    }
    let version = be32(bytes, 4)?;
    if !(2..=3).contains(&version) {
        return Err(OverlayProblem::Version(version));
    }
    let backing_offset = be64(bytes, 8)?;
    let backing_len = be32(bytes, 16)?;
    let virtual_size = virtual_size(bytes).ok_or(OverlayProblem::NotQcow2)?;
    if be32(bytes, 32)? != 0 {
        return Err(OverlayProblem::Encrypted);
    }
    if be32(bytes, 60)? != 0 {
        return Err(OverlayProblem::Snapshots);
    }
    let header_len = if version == 3 {
        let incompatible = be64(bytes, 72)?;
        if incompatible & 0b100 != 0 {
            return Err(OverlayProblem::ExternalData);
        }
        if incompatible & 0b10 != 0 {
            return Err(OverlayProblem::Corrupt);
        }
        if incompatible & !KNOWN_INCOMPATIBLE != 0 {
            return Err(OverlayProblem::UnknownFeatures(
                incompatible & !KNOWN_INCOMPATIBLE,
            ));
        }
        be32(bytes, 100)? as usize
    } else {
        72
    };
    // Header extensions, up to the end marker.
    let mut at = header_len;
    loop {
        let kind = be32(bytes, at)?;
        let len = be32(bytes, at + 4)? as usize;
        if kind == 0 {
            break;
        }
        if kind == EXT_DATA_FILE {
            return Err(OverlayProblem::ExternalData);
        }
        if kind == EXT_ENCRYPTION {
            return Err(OverlayProblem::Encrypted);
        }
        at = at
            .checked_add(8 + len.div_ceil(8) * 8)
            .filter(|&end| end < bytes.len())
            .ok_or(OverlayProblem::Damaged(
                "header extensions run past the first cluster",
            ))?;
    }
    let backing = if backing_offset == 0 {
        None
    } else {
        let start = usize::try_from(backing_offset)
            .map_err(|_| OverlayProblem::Damaged("backing file name out of place"))?;
        let name = bytes
            .get(start..start + backing_len as usize)
            .ok_or(OverlayProblem::Damaged("backing file name out of place"))?;
        Some(String::from_utf8_lossy(name).into_owned())
    };
    Ok(Header {
        virtual_size,
        backing,
    })
}

/// The first [`HEADER_BYTES`] (at most `len`) from `offset` of the file at `path`.
pub fn read_head(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path)?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut first = Vec::with_capacity(HEADER_BYTES);
    file.take(len.min(HEADER_BYTES as u64))
        .read_to_end(&mut first)?;
    Ok(first)
}

/// The virtual size in a qcow2 header's first bytes; `None` when they are not a qcow2 header.
pub fn virtual_size(head: &[u8]) -> Option<u64> {
    if head.get(..4) != Some(MAGIC) {
        return None;
    }
    be64(head, 24).ok()
}

/// Where the overlay is, for `qemu-img info`.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    /// A file of its own.
    File(&'a Path),
    /// A member of a bundle.
    Member(&'a Path, Span),
}

/// Checks the overlay's header ([`parse_header`]), then asks `qemu-img info` (which opens no
/// backing file) whether QEMU reads it the same way.
/// `backing` is the base's SHA-512 the overlay must name, or `None` for the disk of a machine
/// booted from an ISO, which must name no backing file at all.
pub async fn check(
    location: Location<'_>,
    backing: Option<&str>,
    virtual_size: u64,
) -> Result<(), CheckError> {
    let (path, offset, len) = match location {
        Location::File(path) => (path, 0, u64::MAX),
        Location::Member(path, span) => (path, span.offset, span.len),
    };
    let first = read_head(path, offset, len).map_err(CheckError::Io)?;
    let header = match backing {
        Some(base_sha512) => parse_header(&first, base_sha512)?,
        None => parse_unbacked(&first)?,
    };
    if header.virtual_size != virtual_size {
        return Err(OverlayProblem::VirtualSize {
            found: header.virtual_size,
            expected: virtual_size,
        }
        .into());
    }
    let qemu_img = crate::programs::find_program("qemu-img").ok_or(CheckError::NoQemuImg)?;
    let mut command = Command::new(qemu_img);
    command.args(["info", "--output=json", "--force-share"]);
    match location {
        Location::File(path) => {
            command.args(["-f", "qcow2"]).arg(path);
        }
        Location::Member(path, span) => {
            // QEMU's option syntax doubles a comma inside a value. Its raw driver wants whole
            // 512-byte sectors: tar pads every member to one, with zeros.
            let file = path.to_string_lossy().replace(',', ",,");
            command.arg("--image-opts").arg(format!(
                "driver=qcow2,file.driver=raw,file.offset={},file.size={},file.file.driver=file,file.file.filename={file}",
                span.offset,
                span.len.div_ceil(512) * 512
            ));
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(INFO_WITHIN, command.output())
        .await
        .map_err(|_| {
            OverlayProblem::QemuImg(format!("no answer within {} s", INFO_WITHIN.as_secs()))
        })?
        .map_err(CheckError::Run)?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(OverlayProblem::QemuImg(last_line(&said)).into());
    }
    let info: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| OverlayProblem::QemuImg(format!("unreadable answer ({e})")))?;
    if info["format"] != "qcow2" {
        return Err(OverlayProblem::NotQcow2.into());
    }
    if info["virtual-size"].as_u64() != Some(virtual_size) {
        return Err(OverlayProblem::VirtualSize {
            found: info["virtual-size"].as_u64().unwrap_or(0),
            expected: virtual_size,
        }
        .into());
    }
    if !info["format-specific"]["data"]["data-file"].is_null() {
        return Err(OverlayProblem::ExternalData.into());
    }
    if info["encrypted"].as_bool() == Some(true) {
        return Err(OverlayProblem::Encrypted.into());
    }
    if info["backing-filename"].as_str() != backing {
        return Err(OverlayProblem::ForeignBacking(
            info["backing-filename"].as_str().unwrap_or("").to_string(),
        )
        .into());
    }
    Ok(())
}

/// Checking or converting an overlay failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Problem(#[from] OverlayProblem),
    #[error("qemu-img is not installed; install it: sudo apt-get install qemu-utils")]
    NoQemuImg,
    #[error("cannot run qemu-img")]
    Run(#[source] std::io::Error),
    #[error("cannot read it")]
    Io(#[source] std::io::Error),
    #[error("qemu-img could not {step}: {said}")]
    QemuImg { step: &'static str, said: String },
    #[error("cancelled")]
    Cancelled,
}

/// The compression type of the overlays this Sloop writes: zstd where QEMU has it.
pub async fn compression() -> &'static str {
    let Some(qemu_img) = crate::programs::find_program("qemu-img") else {
        return "zlib";
    };
    let help = Command::new(qemu_img)
        .args(["create", "-f", "qcow2", "-o", "help"])
        .stdin(Stdio::null())
        .output()
        .await;
    match help {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("compression_type") => "zstd",
        _ => "zlib",
    }
}

/// A copy of a machine's changes, for [`convert_changes`].
#[derive(Debug, Clone, Copy)]
pub struct Conversion<'a> {
    /// The runnable base the overlay stands on; `None` for the disk of a machine booted from an
    /// ISO, which has no backing file and is copied whole (it holds only the machine's changes).
    pub base: Option<&'a Path>,
    /// The machine's overlay on it.
    pub overlay: &'a Path,
    /// The new file: the changes alone.
    pub out: &'a Path,
    pub base_sha512: &'a str,
    /// `zstd` or `zlib`.
    pub compression: &'a str,
    /// The disk's virtual size, for progress.
    pub disk_bytes: u64,
}

/// Writes the changes of the overlay over its base into a new file, compressed, with progress
/// (in bytes of the disk), then names its backing file by the base's SHA-512 alone. Cancelling
/// kills qemu-img.
pub async fn convert_changes(
    job: &Conversion<'_>,
    meter: &mut Meter,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<(), CheckError> {
    let qemu_img = crate::programs::find_program("qemu-img").ok_or(CheckError::NoQemuImg)?;
    let child = Command::new(&qemu_img)
        .args(["convert", "-p", "-f", "qcow2", "-O", "qcow2", "-c"])
        // zlib is qcow2's default; a QEMU without zstd does not know the option at all.
        .args(
            (job.compression != "zlib")
                .then(|| {
                    [
                        "-o".to_string(),
                        format!("compression_type={}", job.compression),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .args(
            job.base
                .map(|base| {
                    [
                        "-F".into(),
                        "qcow2".into(),
                        "-B".into(),
                        base.as_os_str().to_owned(),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .arg(job.overlay)
        .arg(job.out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(CheckError::Run)?;
    match crate::qemu_img::follow(child, job.disk_bytes, meter, reporter, cancel)
        .await
        .map_err(CheckError::Run)?
    {
        crate::qemu_img::Ended::Done => {}
        crate::qemu_img::Ended::Cancelled => return Err(CheckError::Cancelled),
        crate::qemu_img::Ended::Failed(said) => {
            return Err(CheckError::QemuImg {
                step: "copy the machine's changes",
                said,
            });
        }
    }
    if job.base.is_none() {
        return Ok(());
    }
    rebase_unsafe(
        &qemu_img,
        job.out,
        job.base_sha512,
        "name the base by its SHA-512",
    )
    .await
}

/// Points `overlay`'s backing file at `backing` (qcow2) without reading either: the name
/// changes, the data does not.
pub async fn rebase_unsafe(
    qemu_img: &Path,
    overlay: &Path,
    backing: &str,
    step: &'static str,
) -> Result<(), CheckError> {
    let output = Command::new(qemu_img)
        .args(["rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(backing)
        .arg(overlay)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(CheckError::Run)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(CheckError::QemuImg {
            step,
            said: last_line(&String::from_utf8_lossy(&output.stderr)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_naming_nothing_else_passes_anything_else_is_named() {
        let sha = "ab".repeat(64);
        let mut header = vec![0u8; 4096];
        header[..4].copy_from_slice(MAGIC);
        header[4..8].copy_from_slice(&3u32.to_be_bytes());
        header[8..16].copy_from_slice(&512u64.to_be_bytes());
        header[16..20].copy_from_slice(&128u32.to_be_bytes());
        header[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        header[100..104].copy_from_slice(&112u32.to_be_bytes());
        header[512..640].copy_from_slice(sha.as_bytes());
        assert_eq!(
            parse_header(&header, &sha).unwrap(),
            Header {
                virtual_size: 1 << 30,
                backing: Some(sha.clone())
            }
        );

        let mut foreign = header.clone();
        foreign[512..523].copy_from_slice(b"/etc/shadow");
        foreign[16..20].copy_from_slice(&11u32.to_be_bytes());
        assert_eq!(
            parse_header(&foreign, &sha).unwrap_err(),
            OverlayProblem::ForeignBacking("/etc/shadow".into())
        );
        let mut external = header.clone();
        external[72..80].copy_from_slice(&4u64.to_be_bytes());
        assert_eq!(
            parse_header(&external, &sha).unwrap_err(),
            OverlayProblem::ExternalData
        );
        let mut extension = header.clone();
        extension[112..116].copy_from_slice(&EXT_DATA_FILE.to_be_bytes());
        extension[116..120].copy_from_slice(&8u32.to_be_bytes());
        assert_eq!(
            parse_header(&extension, &sha).unwrap_err(),
            OverlayProblem::ExternalData
        );
        assert_eq!(
            parse_header(&[0u8; 4096], &sha).unwrap_err(),
            OverlayProblem::NotQcow2
        );
    }
}
