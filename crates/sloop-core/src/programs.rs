//! Finding the programs Sloop runs. Depends on nothing else in the crate.

use std::path::{Path, PathBuf};

/// Finds an executable by name on `PATH`, and in the sbin folders (not on a normal user's PATH).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/libexec"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The QEMU system emulator for x86-64 guests.
pub fn qemu_binary() -> Option<PathBuf> {
    find_program("qemu-system-x86_64")
}
