//! A machine's manifest (`machine.toml` in its folder): everything about the machine that
//! libvirt does not hold. The same facts later travel in a bundle to a grid site.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

/// A machine's name: 1 to 32 of `a-z`, `0-9` and `-`, starting with a letter or digit. It is
/// also the guest's hostname and, prefixed `sloop-`, the libvirt domain's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MachineName(String);

/// A name that breaks the rules above.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a valid machine name: use 1 to 32 lower-case letters, digits and '-', starting with a letter or digit"
)]
pub struct InvalidName(pub String);

impl FromStr for MachineName {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, InvalidName> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidName(s.to_string()))
        }
    }
}

impl TryFrom<String> for MachineName {
    type Error = InvalidName;
    fn try_from(s: String) -> Result<Self, InvalidName> {
        s.parse()
    }
}

impl From<MachineName> for String {
    fn from(name: MachineName) -> String {
        name.0
    }
}

impl fmt::Display for MachineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl MachineName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The certified base image a machine's overlay sits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImage {
    /// Lower-case hex SHA-512 of the base file: its identity everywhere (store, bundle, site).
    pub sha512: String,
    pub title: String,
    /// The read-only file in the image store.
    pub path: PathBuf,
}

pub use crate::types::DiskLayout;

/// What the machine may use of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub vcpus: u32,
    pub memory_mib: u32,
    /// The disk's virtual size: an overlay's at least the base's; a live CD machine's empty
    /// disk this large.
    pub disk_gib: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            vcpus: 2,
            memory_mib: 2048,
            disk_gib: 20,
        }
    }
}

/// The manifest as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: MachineName,
    /// The libvirt domain's UUID.
    pub uuid: String,
    /// Changing it makes cloud-init treat the next boot as a first boot.
    pub instance_id: String,
    /// The account Sloop logs in as.
    pub user: String,
    pub base: BaseImage,
    /// How the machine's disks are laid out (absent in manifests of machines made before ISO
    /// images: an overlay).
    #[serde(default)]
    pub layout: DiskLayout,
    pub resources: Resources,
    /// Host port on 127.0.0.1 forwarded to the guest's SSH port.
    pub ssh_port: u16,
    /// Host folder shared read-write at /analysis.
    pub work_dir: Option<PathBuf>,
    /// RFC 3339.
    pub created: String,
    /// Whether the user's grid proxy is placed in the machine at every start and renewal.
    #[serde(default)]
    pub proxy_attached: bool,
    /// The bundle the machine was imported from; `None` for a machine made here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// Where an imported machine's changes came from: the bundle's provenance, kept so the machine
/// can say who changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The bundle's file name.
    pub bundle: String,
    /// The machine's name where it was exported.
    pub machine: String,
    /// The SHA-512 of the bundle's overlay.
    pub overlay_sha512: String,
    /// The signer's identity (the user's DN); `None` for an unsigned bundle.
    pub signed_by: Option<String>,
    /// When the bundle was made (and signed), RFC 3339.
    pub created_at: String,
    #[serde(default)]
    pub note: String,
}

/// A manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read or write the machine manifest")]
    Io(#[from] std::io::Error),
    #[error("machine manifest {path} is damaged: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The manifest's file in a machine folder.
pub fn file_in(machine_dir: &Path) -> PathBuf {
    machine_dir.join("machine.toml")
}

impl Manifest {
    /// The libvirt domain's name: `sloop-<name>`, so Sloop's domains stand apart from others.
    pub fn domain_name(&self) -> String {
        domain_name(&self.name)
    }

    /// Reads the manifest in `machine_dir`.
    pub fn load(machine_dir: &Path) -> Result<Self, ManifestError> {
        let path = file_in(machine_dir);
        let text = fs_err::read_to_string(&path)?;
        toml::from_str(&text).map_err(|e| ManifestError::Parse {
            path,
            message: e.message().to_string(),
        })
    }

    /// Writes the manifest into `machine_dir`, whole or not at all.
    pub fn save(&self, machine_dir: &Path) -> Result<(), ManifestError> {
        let text = toml::to_string_pretty(self).map_err(|e| ManifestError::Parse {
            path: file_in(machine_dir),
            message: e.to_string(),
        })?;
        write_atomic(&file_in(machine_dir), text.as_bytes(), 0o644)?;
        Ok(())
    }
}

/// The libvirt domain name for machine `name`.
pub fn domain_name(name: &MachineName) -> String {
    format!("sloop-{name}")
}

/// Every machine folder's manifest under `machines_dir`, sorted by name. Folders without a
/// manifest (a create that was interrupted) are skipped.
pub fn load_all(machines_dir: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let entries = match fs_err::read_dir(machines_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut manifests = Vec::new();
    for entry in entries {
        let dir = entry?.path();
        if file_in(&dir).exists() {
            manifests.push(Manifest::load(&dir)?);
        }
    }
    manifests.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_hostname_rules() {
        for good in ["a", "analysis-1", "z9"] {
            assert!(good.parse::<MachineName>().is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(33)] {
            let e = bad.parse::<MachineName>().unwrap_err().to_string();
            assert!(e.contains("not a valid machine name"), "{e}");
        }
    }

    #[test]
    fn manifest_round_trips_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest {
            name: "demo".parse().unwrap(),
            uuid: "9f1c7f4e-6a43-4d2e-9d5c-0d0c2d1c1a11".into(),
            instance_id: "sloop-demo-1".into(),
            user: "sloop".into(),
            base: BaseImage {
                sha512: "ab".repeat(64),
                title: "Test".into(),
                path: "/x/base".into(),
            },
            layout: DiskLayout::LiveCd,
            resources: Resources::default(),
            ssh_port: 40022,
            work_dir: Some("/home/u/work".into()),
            created: "2026-11-24T21:00:00Z".into(),
            proxy_attached: false,
            origin: None,
        };
        let machine_dir = dir.path().join("demo");
        std::fs::create_dir(&machine_dir).unwrap();
        std::fs::create_dir(dir.path().join("half-made")).unwrap();
        m.save(&machine_dir).unwrap();
        assert_eq!(Manifest::load(&machine_dir).unwrap(), m);
        // A manifest from before ISO images has no layout: its disk is an overlay.
        let old = std::fs::read_to_string(file_in(&machine_dir))
            .unwrap()
            .replace("layout = \"live-cd\"\n", "");
        assert!(!old.contains("layout"), "{old}");
        assert_eq!(
            toml::from_str::<Manifest>(&old).unwrap().layout,
            DiskLayout::Overlay
        );
        assert_eq!(load_all(dir.path()).unwrap(), vec![m]);
        assert_eq!(load_all(&dir.path().join("none")).unwrap(), vec![]);
    }
}
