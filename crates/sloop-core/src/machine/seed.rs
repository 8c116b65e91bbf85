//! The machine's cloud-init NoCloud seed: `meta-data` and `user-data` on an ISO 9660 volume
//! labelled `cidata`, attached read-only.
//!
//! Sloop writes a small, fixed subset of cloud-config, quoting every string the JSON way (valid
//! YAML), so that both real cloud-init and the test image's small reader understand it alike.
//! The exact shape is in assets/test-image/seed-example/.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

use base64::Engine as _;
use tokio::process::Command;

use crate::types::ShareKind;

/// Where the work directory appears inside the machine.
pub const WORK_MOUNT_POINT: &str = "/analysis";
/// The share's tag (9p mount tag or virtiofs tag).
pub const WORK_TAG: &str = "work";
/// The memory-only folder (ramfs, never swapped) where Sloop places secrets such as the user's
/// proxy: nothing placed there ever reaches the machine's disk, so none of it can end up in an
/// overlay or a bundle.
pub const SECRETS_DIR: &str = "/run/sloop/secrets";

/// A file cloud-init writes into the machine.
#[derive(Clone, PartialEq, Eq)]
pub struct WriteFile {
    pub path: String,
    pub owner: String,
    pub permissions: u32,
    pub content: Vec<u8>,
}

impl std::fmt::Debug for WriteFile {
    // Content may be a secret (a proxy): never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteFile")
            .field("path", &self.path)
            .field("bytes", &self.content.len())
            .finish()
    }
}

/// What goes into a seed.
pub struct Seed {
    pub instance_id: String,
    pub hostname: String,
    pub user: String,
    /// The user's uid, fixed so that boot commands can hand over /analysis before the user
    /// exists (cloud-init runs bootcmd before it creates users).
    pub uid: u32,
    pub authorized_keys: Vec<String>,
    /// OpenSSH-format private host key. A secret.
    pub host_key_private: zeroize::Zeroizing<String>,
    pub host_key_public: String,
    pub write_files: Vec<WriteFile>,
    /// Run at every boot, before SSH starts.
    pub bootcmd: Vec<String>,
    /// Run once per instance, after users exist.
    pub runcmd: Vec<String>,
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seed")
            .field("instance_id", &self.instance_id)
            .field("hostname", &self.hostname)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The seed could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("no ISO 9660 tool found; install one: sudo apt-get install genisoimage")]
    NoIsoTool,
    #[error("cannot write the seed")]
    Io(#[from] std::io::Error),
    #[error("{tool} could not make the seed image: {message}")]
    Tool { tool: String, message: String },
}

/// A YAML scalar: JSON string syntax is a YAML double-quoted scalar.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The boot command that mounts the work directory share at [`WORK_MOUNT_POINT`] and hands it
/// to the user `uid`, on every boot, before SSH starts. A missing share is logged, never fatal.
pub fn mount_work_dir(kind: ShareKind, uid: u32) -> String {
    let mount = match kind {
        ShareKind::NineP => format!(
            "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 {WORK_TAG} {WORK_MOUNT_POINT}"
        ),
        ShareKind::Virtiofs => format!("mount -t virtiofs {WORK_TAG} {WORK_MOUNT_POINT}"),
    };
    // With 9p in mapped mode the owner is kept in the host folder's extended attributes: the
    // host folder's own owner does not change.
    format!(
        "mkdir -p {WORK_MOUNT_POINT} && if mountpoint -q {WORK_MOUNT_POINT} || {mount}; then chown {uid}:{uid} {WORK_MOUNT_POINT}; else echo 'sloop: work directory not mounted' >&2; fi"
    )
}

/// The boot command that mounts [`SECRETS_DIR`] as a ramfs owned by `uid`, mode 0700. A ramfs
/// (unlike a tmpfs) is never written to swap, which lives on the machine's disk.
pub fn mount_secrets(uid: u32) -> String {
    format!(
        "mkdir -p {SECRETS_DIR} && if mountpoint -q {SECRETS_DIR} || mount -t ramfs -o mode=0700 sloop-secrets {SECRETS_DIR}; then chown {uid}:{uid} {SECRETS_DIR} && chmod 0700 {SECRETS_DIR}; else echo 'sloop: no memory-only folder for secrets' >&2; fi"
    )
}

impl Seed {
    /// `meta-data`.
    pub fn meta_data(&self) -> String {
        format!(
            "instance-id: {}\nlocal-hostname: {}\n",
            q(&self.instance_id),
            q(&self.hostname)
        )
    }

    /// `user-data` (`#cloud-config`).
    pub fn user_data(&self) -> String {
        let mut y = String::new();
        let _ = writeln!(y, "#cloud-config");
        let _ = writeln!(
            y,
            "# Written by Sloop for machine {}; Sloop rewrites it when the machine changes.",
            q(&self.hostname)
        );
        let _ = writeln!(y, "hostname: {}", q(&self.hostname));
        y.push_str("ssh_pwauth: false\ndisable_root: true\nusers:\n");
        let _ = writeln!(y, "  - name: {}", q(&self.user));
        let _ = writeln!(y, "    uid: {}", self.uid);
        y.push_str("    gecos: \"Sloop user\"\n    shell: \"/bin/bash\"\n");
        y.push_str("    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    lock_passwd: true\n");
        y.push_str("    ssh_authorized_keys:\n");
        for key in &self.authorized_keys {
            let _ = writeln!(y, "      - {}", q(key));
        }
        // With ssh_keys given, cloud-init generates no host keys; `ssh_genkeytypes: []` would say
        // so too but fails cloud-init's schema (the list needs an item).
        y.push_str("ssh_deletekeys: true\nssh_keys:\n  ed25519_private: |\n");
        for line in self.host_key_private.lines() {
            let _ = writeln!(y, "    {line}");
        }
        let _ = writeln!(y, "  ed25519_public: {}", q(&self.host_key_public));
        if !self.write_files.is_empty() {
            y.push_str("write_files:\n");
            for file in &self.write_files {
                let _ = writeln!(y, "  - path: {}", q(&file.path));
                let _ = writeln!(y, "    owner: {}", q(&file.owner));
                let _ = writeln!(y, "    permissions: \"{:04o}\"", file.permissions);
                y.push_str("    encoding: \"b64\"\n");
                let encoded = base64::engine::general_purpose::STANDARD.encode(&file.content);
                let _ = writeln!(y, "    content: {}", q(&encoded));
            }
        }
        for (key, commands) in [("bootcmd", &self.bootcmd), ("runcmd", &self.runcmd)] {
            if !commands.is_empty() {
                let _ = writeln!(y, "{key}:");
                for command in commands {
                    let _ = writeln!(y, "  - {}", q(command));
                }
            }
        }
        y
    }

    /// Writes the seed image to `out`, whole or not at all.
    #[tracing::instrument(skip(self), fields(instance_id = %self.instance_id))]
    pub async fn write_iso(&self, out: &Path) -> Result<(), SeedError> {
        let tool = crate::host::iso_tool().ok_or(SeedError::NoIsoTool)?;
        let dir = out.parent().unwrap_or_else(|| Path::new("."));
        let staging = tempfile::Builder::new().prefix(".seed-").tempdir_in(dir)?;
        let files = staging.path().join("files");
        std::fs::create_dir(&files)?;
        // The user-data holds the host's private key: private from the first byte.
        crate::fsutil::write_atomic(&files.join("user-data"), self.user_data().as_bytes(), 0o600)?;
        crate::fsutil::write_atomic(&files.join("meta-data"), self.meta_data().as_bytes(), 0o644)?;
        let iso = staging.path().join("seed.iso");
        let output = Command::new(&tool)
            .arg("-output")
            .arg(&iso)
            .args(["-volid", "cidata", "-joliet", "-rock", "-quiet"])
            .arg(files.join("user-data"))
            .arg(files.join("meta-data"))
            .stdin(Stdio::null())
            .output()
            .await?;
        if !output.status.success() {
            return Err(SeedError::Tool {
                tool: tool.display().to_string(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&iso, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&iso, out)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Seed {
        let boot = mount_work_dir(ShareKind::NineP, 1000);
        Seed {
            instance_id: "sloop-demo-5f0c2a9e".into(),
            hostname: "demo".into(),
            user: "sloop".into(),
            uid: 1000,
            authorized_keys: vec!["ssh-ed25519 AAAAC3Nza sloop-client@demo".into()],
            host_key_private: zeroize::Zeroizing::new(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n"
                    .into(),
            ),
            host_key_public: "ssh-ed25519 AAAAHOST root@demo".into(),
            write_files: vec![WriteFile {
                path: "/etc/sloop/machine".into(),
                owner: "root:root".into(),
                permissions: 0o644,
                content: b"name=demo\n".to_vec(),
            }],
            bootcmd: vec![boot],
            runcmd: vec!["echo \"quoted\" \\ done".into()],
        }
    }

    #[test]
    fn user_data_snapshot() {
        insta::assert_snapshot!(example().user_data());
        insta::assert_snapshot!(example().meta_data());
    }

    #[test]
    fn debug_hides_secrets() {
        let debug = format!("{:?}", example());
        assert!(!debug.contains("PRIVATE"), "{debug}");
    }

    #[tokio::test]
    async fn iso_is_labelled_cidata_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seed.iso");
        example().write_iso(&out).await.unwrap();
        let bytes = std::fs::read(&out).unwrap();
        // ISO 9660 primary volume descriptor at 32 KiB: "CD001", volume id at offset 40.
        assert_eq!(&bytes[0x8001..0x8006], b"CD001");
        assert_eq!(&bytes[0x8028..0x802e], b"cidata");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "staging removed"
        );
    }
}
