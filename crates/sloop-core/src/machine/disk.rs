//! A machine's disk: a qcow2 overlay whose backing file is the read-only certified base.
//! The base is never written; the overlay holds only the user's changes. A machine booted from
//! an ISO ([`super::DiskLayout::LiveCd`]) has an empty qcow2 disk instead, with no backing file.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// The overlay could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("qemu-img is not installed; install it: sudo apt-get install qemu-utils")]
    NoQemuImg,
    #[error("cannot run qemu-img")]
    Run(#[source] std::io::Error),
    #[error("qemu-img could not make the overlay: {0}")]
    QemuImg(String),
    #[error("cannot put the new overlay in place at {path}")]
    Place {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Creates `overlay` on `base` (qcow2, backing format recorded so libvirt never probes it),
/// `size_gib` large or the base's size when that is larger. Written under a temporary name and
/// renamed, so an interrupted create leaves no overlay that looks whole.
pub async fn create_overlay(base: &Path, overlay: &Path, size_gib: u32) -> Result<(), DiskError> {
    let qemu_img = crate::programs::find_program("qemu-img").ok_or(DiskError::NoQemuImg)?;
    let partial = overlay.with_extension("qcow2.partial");
    let made = qemu_img_on(&qemu_img, &partial, |c| {
        c.args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(base)
            .arg(&partial);
    })
    .await?;
    if let Err(message) = made {
        return Err(gone(&partial, message));
    }
    // Growing to the requested size; a base larger than that keeps its own size.
    let grown = qemu_img_on(&qemu_img, &partial, |c| {
        c.args(["resize", "-q", "-f", "qcow2"])
            .arg(&partial)
            .arg(format!("{size_gib}G"));
    })
    .await?;
    if let Err(message) = grown
        && !message.contains("shrink")
    {
        return Err(gone(&partial, message));
    }
    place(&partial, overlay)
}

/// Creates the empty disk of a machine booted from an ISO: qcow2, `size_gib` large, no backing
/// file (the guest formats it). Written under a temporary name and renamed, like an overlay.
pub async fn create_empty(disk: &Path, size_gib: u32) -> Result<(), DiskError> {
    let qemu_img = crate::programs::find_program("qemu-img").ok_or(DiskError::NoQemuImg)?;
    let partial = disk.with_extension("qcow2.partial");
    let made = qemu_img_on(&qemu_img, &partial, |c| {
        c.args(["create", "-q", "-f", "qcow2"])
            .arg(&partial)
            .arg(format!("{size_gib}G"));
    })
    .await?;
    if let Err(message) = made {
        return Err(gone(&partial, message));
    }
    place(&partial, disk)
}

/// Runs qemu-img with the arguments `args` gives it: `Err(what it said)` when it failed.
async fn qemu_img_on(
    qemu_img: &Path,
    partial: &Path,
    args: impl FnOnce(&mut Command),
) -> Result<Result<(), String>, DiskError> {
    let mut command = Command::new(qemu_img);
    args(&mut command);
    let output = command.stdin(Stdio::null()).output().await.map_err(|e| {
        let _ = std::fs::remove_file(partial);
        DiskError::Run(e)
    })?;
    Ok(if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    })
}

/// Removes the unfinished disk; the error qemu-img's words make.
fn gone(partial: &Path, message: String) -> DiskError {
    let _ = std::fs::remove_file(partial);
    DiskError::QemuImg(message)
}

/// Renames the finished overlay into place; a failure names the rename, not qemu-img.
fn place(partial: &Path, overlay: &Path) -> Result<(), DiskError> {
    std::fs::rename(partial, overlay).map_err(|source| {
        let _ = std::fs::remove_file(partial);
        DiskError::Place {
            path: overlay.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 10, bug 4): a failed rename is reported as one, and leaves no partial.
    #[test]
    fn a_failed_rename_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("overlay.qcow2.partial");
        std::fs::write(&partial, b"x").unwrap();
        // A folder that does not exist: the rename fails.
        let error = place(&partial, &dir.path().join("gone/overlay.qcow2")).unwrap_err();
        let message = crate::error_chain(&error);
        assert!(
            message.starts_with("cannot put the new overlay in place at "),
            "{message}"
        );
        assert!(!message.contains("qemu-img"), "{message}");
        assert!(!partial.exists());
    }
}
