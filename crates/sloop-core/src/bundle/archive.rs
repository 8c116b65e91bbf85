//! The bundle file: a plain (uncompressed) POSIX tar holding exactly `manifest.json`,
//! optionally `manifest.json.p7s`, and `overlay.qcow2`, in that order.
//!
//! Reading treats the file as hostile: only those three names, each at most once, each a plain
//! file of a sane size; links, devices, folders, absolute paths and `..` are refused by name.
//! Nothing is ever unpacked by path: the small members are read into memory, and the overlay is
//! located (offset and length) so that callers copy or check exactly its bytes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::format::{MANIFEST, MAX_OVERLAY, MAX_SMALL_MEMBER, OVERLAY, SIGNATURE};

/// Why a file is not a well-formed bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveProblem {
    #[error("it is not a tar archive: {0}")]
    NotTar(String),
    #[error("member {member:?} {problem}")]
    Member {
        member: String,
        problem: &'static str,
    },
    #[error("it has no {0} member")]
    Missing(&'static str),
}

/// Where the overlay's bytes are inside the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: u64,
    pub len: u64,
}

/// A bundle's members, checked for shape (not yet for content).
#[derive(Debug, Clone)]
pub struct Members {
    pub manifest: Vec<u8>,
    pub signature: Option<Vec<u8>>,
    pub overlay: Span,
}

/// Lists and checks the members of the bundle at `path`.
pub fn scan(path: &Path) -> Result<Members, ScanError> {
    let file = File::open(path).map_err(ScanError::Io)?;
    let mut archive = tar::Archive::new(file);
    let not_tar = |e: std::io::Error| ScanError::Problem(ArchiveProblem::NotTar(e.to_string()));
    let mut manifest = None;
    let mut signature = None;
    let mut overlay = None;
    for entry in archive.entries_with_seek().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let name_bytes = entry.path_bytes().into_owned();
        let member = String::from_utf8_lossy(&name_bytes).into_owned();
        let refuse = |problem: &'static str| {
            ScanError::Problem(ArchiveProblem::Member {
                member: member.clone(),
                problem,
            })
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            return Err(refuse(
                "is a symbolic link; a bundle holds plain files only",
            ));
        }
        if kind.is_hard_link() {
            return Err(refuse("is a hard link; a bundle holds plain files only"));
        }
        if kind.is_dir() {
            return Err(refuse("is a folder; a bundle holds plain files only"));
        }
        if !kind.is_file() {
            return Err(refuse(
                "is a device or other special file; a bundle holds plain files only",
            ));
        }
        if name_bytes.starts_with(b"/") {
            return Err(refuse("has an absolute path"));
        }
        if name_bytes.split(|b| *b == b'/').any(|part| part == b"..") {
            return Err(refuse("has a '..' in its path"));
        }
        let size = entry.header().size().map_err(not_tar)?;
        let (slot_is_taken, limit) = match member.as_str() {
            MANIFEST => (manifest.is_some(), MAX_SMALL_MEMBER),
            SIGNATURE => (signature.is_some(), MAX_SMALL_MEMBER),
            OVERLAY => (overlay.is_some(), MAX_OVERLAY),
            _ => {
                return Err(refuse(
                    "is not one a bundle has (manifest.json, manifest.json.p7s, overlay.qcow2)",
                ));
            }
        };
        if slot_is_taken {
            return Err(refuse("appears twice"));
        }
        if size > limit {
            return Err(refuse("is larger than any real one"));
        }
        if member == OVERLAY {
            overlay = Some(Span {
                offset: entry.raw_file_position(),
                len: size,
            });
            continue;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut entry)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(not_tar)?;
        if bytes.len() as u64 != size {
            return Err(refuse("is cut short"));
        }
        if member == MANIFEST {
            manifest = Some(bytes);
        } else {
            signature = Some(bytes);
        }
    }
    let manifest = manifest.ok_or(ScanError::Problem(ArchiveProblem::Missing(MANIFEST)))?;
    let overlay = overlay.ok_or(ScanError::Problem(ArchiveProblem::Missing(OVERLAY)))?;
    let file_len = std::fs::metadata(path).map_err(ScanError::Io)?.len();
    if overlay.offset.saturating_add(overlay.len) > file_len {
        return Err(ScanError::Problem(ArchiveProblem::Member {
            member: OVERLAY.into(),
            problem: "is cut short",
        }));
    }
    Ok(Members {
        manifest,
        signature,
        overlay,
    })
}

/// Reading a bundle failed: the file could not be read, or it is not a bundle.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read it")]
    Io(#[source] std::io::Error),
    #[error(transparent)]
    Problem(ArchiveProblem),
}

/// A reader of exactly the overlay's bytes in the bundle at `path`.
pub fn overlay_reader(path: &Path, span: Span) -> std::io::Result<std::io::Take<File>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(span.offset))?;
    Ok(file.take(span.len))
}

/// Writes a bundle to `out` (a new file): the manifest, the signature when there is one, then
/// the overlay read from `overlay`. Members are stamped with `mtime` and owned by uid 0, so the
/// same inputs give the same bytes.
pub fn write(
    out: &mut impl Write,
    manifest: &[u8],
    signature: Option<&[u8]>,
    overlay: &mut impl Read,
    overlay_len: u64,
    mtime: u64,
) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(out);
    let header = |len: u64| {
        let mut header = tar::Header::new_ustar();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header
    };
    builder.append_data(&mut header(manifest.len() as u64), MANIFEST, manifest)?;
    if let Some(signature) = signature {
        builder.append_data(&mut header(signature.len() as u64), SIGNATURE, signature)?;
    }
    builder.append_data(&mut header(overlay_len), OVERLAY, overlay)?;
    builder.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(entries: &[(&str, tar::EntryType, &[u8])]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(file.reopen().unwrap());
        for (name, kind, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            if kind.is_symlink() {
                header.set_size(0);
                builder
                    .append_link(&mut header, name, "/etc/passwd")
                    .unwrap();
            } else {
                // Bypasses the tar crate's own path checks: a hostile bundle is not made by it.
                let path = header.as_old_mut();
                path.name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                builder.append(&header, *bytes).unwrap();
            }
        }
        builder.into_inner().unwrap();
        file
    }

    #[test]
    fn a_written_bundle_scans_back() {
        let file = tempfile::NamedTempFile::new().unwrap();
        write(
            &mut file.reopen().unwrap(),
            b"{}",
            Some(b"sig"),
            &mut &b"QFI\xfbdata"[..],
            8,
            0,
        )
        .unwrap();
        let members = scan(file.path()).unwrap();
        assert_eq!(members.manifest, b"{}");
        assert_eq!(members.signature.as_deref(), Some(&b"sig"[..]));
        let mut overlay = Vec::new();
        overlay_reader(file.path(), members.overlay)
            .unwrap()
            .read_to_end(&mut overlay)
            .unwrap();
        assert_eq!(overlay, b"QFI\xfbdata");
    }

    #[test]
    fn hostile_members_are_refused_by_name() {
        use tar::EntryType::{Block, Regular, Symlink};
        let refused = |entries: &[(&str, tar::EntryType, &[u8])]| {
            scan(bundle_with(entries).path()).unwrap_err().to_string()
        };
        let m: &[u8] = b"{}";
        assert_eq!(
            refused(&[("../overlay.qcow2", Regular, m)]),
            "member \"../overlay.qcow2\" has a '..' in its path"
        );
        assert!(refused(&[("overlay.qcow2", Symlink, m)]).contains("is a symbolic link"));
        assert!(refused(&[("/manifest.json", Regular, m)]).contains("absolute path"));
        assert!(refused(&[("overlay.qcow2", Block, m)]).contains("device"));
        assert!(
            refused(&[("manifest.json", Regular, m), ("manifest.json", Regular, m)])
                .contains("appears twice")
        );
        assert!(refused(&[("evil.sh", Regular, m)]).contains("is not one a bundle has"));
        assert_eq!(
            refused(&[("manifest.json", Regular, m)]),
            "it has no overlay.qcow2 member"
        );
        let text = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(text.path(), [b'x'; 1024]).unwrap();
        assert!(scan(text.path()).is_err());
    }
}
