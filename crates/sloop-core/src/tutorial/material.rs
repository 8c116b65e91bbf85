//! A tutorial's material: a folder packed as a plain POSIX tar (the same bytes every time for the
//! same files: sorted names, no owners, no times), unpacked into the student's work directory.
//!
//! Unpacking treats the archive as hostile even after its digest matched (the trainer's machine
//! may have been the one that was compromised): only plain files and folders, names made of
//! plain components (no absolute paths, no `..`), no links, devices or special bits. A refused
//! archive leaves nothing: it is unpacked into a fresh folder that is renamed into place only at
//! the end.

use std::fs::File;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

/// Why material cannot be packed or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("material folder {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("material folder {path} holds {what}; material may hold only files and folders")]
    NotPlain { path: PathBuf, what: &'static str },
    #[error("the material archive's member {member:?} {problem}; the archive is refused")]
    Member {
        member: String,
        problem: &'static str,
    },
    #[error("the material archive is not a tar archive: {0}")]
    NotTar(String),
    #[error("cannot write the material into {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Packs folder `dir` into the tar at `out` (which must not exist).
pub fn pack(dir: &Path, out: &Path) -> Result<(), MaterialError> {
    let write = |source| MaterialError::Write {
        path: out.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    walk(dir, Path::new(""), &mut entries)?;
    entries.sort();
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(write)?;
    let mut builder = tar::Builder::new(file);
    for relative in entries {
        let path = dir.join(&relative);
        let meta = std::fs::symlink_metadata(&path).map_err(|source| MaterialError::Read {
            path: path.clone(),
            source,
        })?;
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let executable = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, &relative, std::io::empty())
                .map_err(write)?;
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if executable { 0o755 } else { 0o644 });
            header.set_size(meta.len());
            let data = File::open(&path).map_err(|source| MaterialError::Read {
                path: path.clone(),
                source,
            })?;
            builder
                .append_data(&mut header, &relative, data)
                .map_err(write)?;
        }
    }
    let mut file = builder.into_inner().map_err(write)?;
    file.flush().map_err(write)?;
    file.sync_all().map_err(write)
}

/// Every file and folder under `dir`, relative; refuses links and special files.
fn walk(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> Result<(), MaterialError> {
    let dir = root.join(relative);
    let read = |source| MaterialError::Read {
        path: dir.clone(),
        source,
    };
    for entry in std::fs::read_dir(&dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let kind = entry.file_type().map_err(read)?;
        let child = relative.join(entry.file_name());
        if kind.is_symlink() {
            return Err(MaterialError::NotPlain {
                path: root.join(&child),
                what: "a symbolic link",
            });
        }
        if kind.is_dir() {
            out.push(child.clone());
            walk(root, &child, out)?;
        } else if kind.is_file() {
            out.push(child);
        } else {
            return Err(MaterialError::NotPlain {
                path: root.join(&child),
                what: "a special file",
            });
        }
    }
    Ok(())
}

/// Checks every member of the archive at `archive` without writing anything.
pub fn check(archive: &Path) -> Result<usize, MaterialError> {
    visit(archive, |_, _| Ok(()))
}

/// Unpacks the archive at `archive` into `target`, which must not exist; on any refusal
/// nothing is left at `target`.
pub fn unpack(archive: &Path, target: &Path) -> Result<usize, MaterialError> {
    let write = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MaterialError::Write { path, source }
    };
    let parent = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(write(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".material-")
        .tempdir_in(parent)
        .map_err(write(parent))?;
    let root = staging.path().to_path_buf();
    let count = visit(archive, |relative, entry| {
        let path = root.join(relative);
        match entry {
            None => std::fs::create_dir_all(&path).map_err(write(&path)),
            Some((reader, executable)) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(write(dir))?;
                }
                let mut out = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(write(&path))?;
                std::io::copy(reader, &mut out).map_err(write(&path))?;
                let mode = if executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .map_err(write(&path))
            }
        }
    })?;
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(write(&root))?;
    let kept = staging.keep();
    std::fs::rename(&kept, target).map_err(|source| {
        let _ = std::fs::remove_dir_all(&kept);
        MaterialError::Write {
            path: target.to_path_buf(),
            source,
        }
    })?;
    Ok(count)
}

/// A member's contents: `None` for a folder, else its reader and whether it is executable.
type Contents<'a, 'b> = Option<(&'a mut tar::Entry<'b, File>, bool)>;

/// Calls `each` for every member, in order, after checking its name and kind.
fn visit(
    archive: &Path,
    mut each: impl FnMut(&Path, Contents<'_, '_>) -> Result<(), MaterialError>,
) -> Result<usize, MaterialError> {
    let file = File::open(archive).map_err(|e| MaterialError::NotTar(e.to_string()))?;
    let mut tar = tar::Archive::new(file);
    let not_tar = |e: std::io::Error| MaterialError::NotTar(e.to_string());
    let mut count = 0;
    for entry in tar.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let name_bytes = entry.path_bytes().into_owned();
        let member = String::from_utf8_lossy(&name_bytes).into_owned();
        let refuse = |problem| {
            Err(MaterialError::Member {
                member: member.clone(),
                problem,
            })
        };
        let Ok(name) = std::str::from_utf8(&name_bytes) else {
            return refuse("is not UTF-8");
        };
        let relative = Path::new(name.trim_end_matches('/'));
        let plain = !relative.as_os_str().is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return refuse("is not a plain relative name (absolute, `..` or `.`)");
        }
        let mode = entry.header().mode().map_err(not_tar)?;
        if mode & 0o7000 != 0 {
            return refuse("has setuid, setgid or sticky bits");
        }
        let relative = relative.to_path_buf();
        match entry.header().entry_type() {
            tar::EntryType::Directory => each(&relative, None)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                each(&relative, Some((&mut entry, mode & 0o111 != 0)))?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => return refuse("is a link"),
            _ => return refuse("is not a plain file or folder"),
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_packs_the_same_bytes_and_unpacks_what_was_packed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("macros")).unwrap();
        std::fs::write(src.join("hello.C"), "void hello() {}\n").unwrap();
        std::fs::write(src.join("macros/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            src.join("macros/run.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        pack(&src, &dir.path().join("a.tar")).unwrap();
        pack(&src, &dir.path().join("b.tar")).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("a.tar")).unwrap(),
            std::fs::read(dir.path().join("b.tar")).unwrap()
        );
        let out = dir.path().join("out");
        assert_eq!(unpack(&dir.path().join("a.tar"), &out).unwrap(), 3);
        assert_eq!(
            std::fs::read_to_string(out.join("hello.C")).unwrap(),
            "void hello() {}\n"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(out.join("macros/run.sh"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o755);
    }

    /// A tar with one member whose raw header says `name` and `kind`.
    fn hostile(dir: &Path, name: &str, kind: tar::EntryType) -> PathBuf {
        let path = dir.join(format!("hostile-{}.tar", name.replace('/', "_")));
        let mut builder = tar::Builder::new(File::create(&path).unwrap());
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(0);
        header.set_link_name("/etc/passwd").unwrap();
        header.set_cksum();
        builder.append(&header, std::io::empty()).unwrap();
        builder.finish().unwrap();
        path
    }

    #[test]
    fn hostile_material_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind, said) in [
            ("../x", tar::EntryType::Regular, "plain relative name"),
            ("/etc/x", tar::EntryType::Regular, "plain relative name"),
            ("link", tar::EntryType::Symlink, "is a link"),
            ("hard", tar::EntryType::Link, "is a link"),
            ("dev", tar::EntryType::Char, "not a plain file"),
        ] {
            let archive = hostile(dir.path(), name, kind);
            let target = dir.path().join("work");
            let error = unpack(&archive, &target).unwrap_err().to_string();
            assert!(error.contains(said), "{name}: {error}");
            assert!(!target.exists(), "{name}");
            assert!(check(&archive).is_err());
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".material-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let src = dir.path().join("with-link");
        std::fs::create_dir(&src).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("passwd")).unwrap();
        let error = pack(&src, &dir.path().join("l.tar"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }
}
