//! A machine's disk: a qcow2 overlay whose backing file is the read-only certified base.
//! The base is never written; the overlay holds only the user's changes.

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
    let output = Command::new(&qemu_img)
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(&partial)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(DiskError::Run)?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(DiskError::QemuImg(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    // Growing to the requested size; a base larger than that keeps its own size.
    let grown = Command::new(&qemu_img)
        .args(["resize", "-q", "-f", "qcow2"])
        .arg(&partial)
        .arg(format!("{size_gib}G"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(DiskError::Run)?;
    if !grown.status.success() {
        let message = String::from_utf8_lossy(&grown.stderr);
        if !message.contains("shrink") {
            let _ = std::fs::remove_file(&partial);
            return Err(DiskError::QemuImg(message.trim().to_string()));
        }
    }
    place(&partial, overlay)
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
