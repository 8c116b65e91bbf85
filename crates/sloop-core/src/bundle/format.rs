//! The bundle's manifest (`manifest.json`): the contract between Sloop, other people's Sloops,
//! grid sites and tutorials. Documented for outsiders in docs/bundle-format.md; a change here is
//! a change there, and a new `version` when old readers would misread it.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The `format` every manifest carries.
pub const FORMAT: &str = "sloop-bundle";
/// The newest manifest version this Sloop reads. It writes 1 for a machine whose disk is an
/// overlay (as every Sloop reads) and 2, which adds `layout`, for a machine booted from an ISO
/// (an older Sloop would take its disk for an overlay: it is told to update instead).
pub const VERSION: u32 = 2;

/// The version a bundle of a machine with `layout` is written as.
pub fn version_for(layout: crate::machine::DiskLayout) -> u32 {
    match layout {
        crate::machine::DiskLayout::Overlay => 1,
        crate::machine::DiskLayout::LiveCd => 2,
    }
}

/// Member names, in the order Sloop writes them. Nothing else may be in a bundle.
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.json.p7s";
pub const OVERLAY: &str = "overlay.qcow2";

/// Largest manifest and signature Sloop reads (real ones are a few KiB).
pub const MAX_SMALL_MEMBER: u64 = 256 * 1024;
/// Largest overlay Sloop reads: a machine's disk is at most 16 TiB.
pub const MAX_OVERLAY: u64 = 16 << 40;
/// Largest free-text note.
pub const MAX_NOTE: usize = 4096;

/// The manifest, as written in the bundle (JSON, camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export)]
pub struct BundleManifest {
    /// Always `sloop-bundle`.
    pub format: String,
    pub version: u32,
    /// The machine's name where it was exported: the default name on import.
    pub machine: String,
    pub base: BaseRef,
    /// How the machine's disks are laid out (version 2): `live-cd` when the base is an ISO it
    /// boots from and `overlay` is its own disk, with no backing file. Absent: `overlay`.
    #[serde(default, skip_serializing_if = "is_overlay")]
    pub layout: crate::machine::DiskLayout,
    pub overlay: OverlayRef,
    pub resources: BundleResources,
    /// The account Sloop logs in as inside.
    pub user: String,
    /// Where the work directory is mounted inside.
    pub work_dir_mount: String,
    /// When the bundle was made, RFC 3339 UTC; also the signing time of a signed bundle.
    pub created_at: String,
    /// The tool and version that made it, e.g. `sloop 0.1.0`.
    pub tool: String,
    /// Free text from whoever exported it.
    #[serde(default)]
    pub note: String,
}

fn is_overlay(layout: &crate::machine::DiskLayout) -> bool {
    *layout == crate::machine::DiskLayout::Overlay
}

/// The certified base the overlay stands on, and who certified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export)]
pub struct BaseRef {
    /// Lower-case hex SHA-512 of the image file the endorser listed: its identity everywhere.
    pub sha512: String,
    #[ts(type = "number")]
    pub size: u64,
    pub title: String,
    #[serde(default)]
    pub version: String,
    /// The image's `dc:identifier` in its list.
    pub identifier: String,
    /// Where the image's bytes are published (`hv:uri`).
    pub location: String,
    pub list: ListRef,
}

/// The HEPiX image list that certifies the base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export)]
pub struct ListRef {
    /// The list's `dc:identifier`.
    pub identifier: String,
    /// Where the list is published (what `sloop catalog add` takes).
    pub url: String,
    /// The endorser certificate's subject and issuer, oneline form.
    pub endorser_dn: String,
    pub endorser_ca: String,
}

/// The overlay member: only the machine's changes, qcow2, backing file named by the base's
/// SHA-512 alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export)]
pub struct OverlayRef {
    pub sha512: String,
    /// Bytes of the member.
    #[ts(type = "number")]
    pub size: u64,
    /// The disk's size as the machine sees it.
    #[ts(type = "number")]
    pub virtual_size: u64,
    /// `qcow2`.
    pub format: String,
    /// The qcow2 compression type of its clusters (`zstd`, `zlib`).
    pub compression: String,
}

/// What the machine may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export)]
pub struct BundleResources {
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
}

/// Why a manifest is not one Sloop can use. One line each, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestProblem {
    #[error("it is not JSON of the expected shape: {0}")]
    Shape(String),
    #[error("its format is {0:?}, not \"sloop-bundle\"")]
    Format(String),
    #[error("it is version {0}, newer than this Sloop reads ({VERSION}); update Sloop to open it")]
    Version(u32),
    #[error("field {field}: {problem}")]
    Field {
        field: &'static str,
        problem: &'static str,
    },
}

fn field(field: &'static str, problem: &'static str) -> ManifestProblem {
    ManifestProblem::Field { field, problem }
}

/// Whether `text` is 128 lower-case hex digits.
pub fn is_sha512(text: &str) -> bool {
    text.len() == 128 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Printable text of at most `max` characters, no control characters: what may be shown.
fn is_plain(text: &str, max: usize) -> bool {
    text.chars().count() <= max && !text.chars().any(char::is_control)
}

impl BundleManifest {
    /// Parses and checks a manifest read from a bundle.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestProblem> {
        // The format and version first, so a newer bundle says so rather than failing on a field.
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            version: Option<u32>,
        }
        let head: Head =
            serde_json::from_slice(bytes).map_err(|e| ManifestProblem::Shape(e.to_string()))?;
        let format = head.format.unwrap_or_default();
        if format != FORMAT {
            return Err(ManifestProblem::Format(format));
        }
        match head.version {
            Some(1..=VERSION) => {}
            Some(v) if v > VERSION => return Err(ManifestProblem::Version(v)),
            _ => return Err(field("version", "must be 1 or 2")),
        }
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| ManifestProblem::Shape(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The backing file the overlay names: the base's SHA-512, or none for the disk of a
    /// machine booted from an ISO.
    pub fn overlay_backing(&self) -> Option<&str> {
        match self.layout {
            crate::machine::DiskLayout::Overlay => Some(&self.base.sha512),
            crate::machine::DiskLayout::LiveCd => None,
        }
    }

    /// The manifest's bytes as written (and signed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Every field's rule; see docs/bundle-format.md.
    pub fn check(&self) -> Result<(), ManifestProblem> {
        if self.machine.parse::<crate::machine::MachineName>().is_err() {
            return Err(field("machine", "is not a valid machine name"));
        }
        if !is_sha512(&self.base.sha512) {
            return Err(field("base.sha512", "must be 128 lower-case hex digits"));
        }
        if !is_sha512(&self.overlay.sha512) {
            return Err(field("overlay.sha512", "must be 128 lower-case hex digits"));
        }
        if self.version < version_for(self.layout) {
            return Err(field("layout", "needs manifest version 2"));
        }
        for (name, text) in [
            ("base.title", &self.base.title),
            ("base.version", &self.base.version),
            ("base.identifier", &self.base.identifier),
            ("base.location", &self.base.location),
            ("base.list.identifier", &self.base.list.identifier),
            ("base.list.url", &self.base.list.url),
            ("base.list.endorserDn", &self.base.list.endorser_dn),
            ("base.list.endorserCa", &self.base.list.endorser_ca),
            ("createdAt", &self.created_at),
            ("tool", &self.tool),
        ] {
            if !is_plain(text, 1024) {
                return Err(field(name, "must be plain text of at most 1024 characters"));
            }
        }
        if !is_plain(&self.note.replace('\n', " "), MAX_NOTE) {
            return Err(field("note", "must be text of at most 4096 characters"));
        }
        if self.overlay.format != "qcow2" {
            return Err(field("overlay.format", "must be qcow2"));
        }
        if !matches!(self.overlay.compression.as_str(), "zstd" | "zlib") {
            return Err(field("overlay.compression", "must be zstd or zlib"));
        }
        if self.overlay.size > MAX_OVERLAY {
            return Err(field("overlay.size", "is more than 16 TiB"));
        }
        let disk = u64::from(self.resources.disk_gib) << 30;
        if self.overlay.virtual_size == 0 || self.overlay.virtual_size > MAX_OVERLAY {
            return Err(field(
                "overlay.virtualSize",
                "must be between 1 byte and 16 TiB",
            ));
        }
        if self.overlay.virtual_size > disk.max(self.base.size) {
            return Err(field(
                "overlay.virtualSize",
                "is larger than resources.diskGib says",
            ));
        }
        let r = &self.resources;
        if !(1..=64).contains(&r.vcpus)
            || !(128..=1024 * 1024).contains(&r.memory_mib)
            || !(1..=16 * 1024).contains(&r.disk_gib)
        {
            return Err(field(
                "resources",
                "must be 1-64 vCPUs, 128 MiB-1 TiB memory, 1-16384 GiB disk",
            ));
        }
        if !valid_user(&self.user) {
            return Err(field("user", "must be a plain account name"));
        }
        if !self.work_dir_mount.starts_with('/')
            || self.work_dir_mount.contains("..")
            || !is_plain(&self.work_dir_mount, 256)
        {
            return Err(field("workDirMount", "must be an absolute path"));
        }
        if time::OffsetDateTime::parse(
            &self.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .is_err()
        {
            return Err(field("createdAt", "must be an RFC 3339 time"));
        }
        Ok(())
    }

    /// When it was made (and signed).
    pub fn created(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::parse(
            &self.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    }
}

fn valid_user(user: &str) -> bool {
    (1..=32).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && !user.starts_with('-')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn example() -> BundleManifest {
        BundleManifest {
            format: FORMAT.into(),
            version: 1,
            machine: "analysis".into(),
            base: BaseRef {
                sha512: "ab".repeat(64),
                size: 1 << 30,
                title: "Debian 12".into(),
                version: "1".into(),
                identifier: "9e2c4f4a-0000-4000-8000-000000000001".into(),
                location: "https://example.org/debian.qcow2".into(),
                list: ListRef {
                    identifier: "9e2c4f4a-0000-4000-8000-000000000000".into(),
                    url: "https://example.org/list.smime".into(),
                    endorser_dn: "/DC=org/CN=Endorser".into(),
                    endorser_ca: "/DC=org/CN=CA".into(),
                },
            },
            layout: crate::machine::DiskLayout::Overlay,
            overlay: OverlayRef {
                sha512: "cd".repeat(64),
                size: 12345,
                virtual_size: 20 << 30,
                format: "qcow2".into(),
                compression: "zstd".into(),
            },
            resources: BundleResources {
                vcpus: 2,
                memory_mib: 2048,
                disk_gib: 20,
            },
            user: "sloop".into(),
            work_dir_mount: "/analysis".into(),
            created_at: "2026-12-06T03:00:00Z".into(),
            tool: "sloop 0.1.0".into(),
            note: "ROOT 6.30 installed".into(),
        }
    }

    #[test]
    fn a_manifest_round_trips() {
        let m = example();
        assert_eq!(BundleManifest::parse(&m.to_bytes()).unwrap(), m);
    }

    /// A machine booted from an ISO travels as version 2 with its layout; an overlay machine's
    /// bundle stays version 1 without the field, as older Sloops read it.
    #[test]
    fn the_layout_travels_from_version_2() {
        let overlay = example();
        assert_eq!(version_for(overlay.layout), 1);
        let text = String::from_utf8(overlay.to_bytes()).unwrap();
        assert!(!text.contains("layout"), "{text}");
        assert_eq!(
            overlay.overlay_backing(),
            Some(overlay.base.sha512.as_str())
        );

        let mut live = example();
        live.layout = crate::machine::DiskLayout::LiveCd;
        live.version = version_for(live.layout);
        assert_eq!(live.version, 2);
        assert!(
            String::from_utf8(live.to_bytes())
                .unwrap()
                .contains("\"layout\": \"live-cd\"")
        );
        assert_eq!(BundleManifest::parse(&live.to_bytes()).unwrap(), live);
        assert_eq!(live.overlay_backing(), None);

        live.version = 1;
        assert_eq!(
            BundleManifest::parse(&live.to_bytes())
                .unwrap_err()
                .to_string(),
            "field layout: needs manifest version 2"
        );
        live.version = 3;
        assert!(matches!(
            BundleManifest::parse(&live.to_bytes()).unwrap_err(),
            ManifestProblem::Version(3)
        ));
    }

    #[test]
    fn bad_manifests_are_refused_by_field() {
        let refused = |change: &dyn Fn(&mut BundleManifest)| {
            let mut m = example();
            change(&mut m);
            BundleManifest::parse(&m.to_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(refused(&|m| m.base.sha512 = "../etc".into()).contains("base.sha512"));
        assert!(refused(&|m| m.machine = "../x".into()).contains("machine"));
        assert!(refused(&|m| m.overlay.format = "raw".into()).contains("overlay.format"));
        assert!(refused(&|m| m.version = 7).contains("newer than this Sloop"));
        assert!(refused(&|m| m.format = "x".into()).contains("not \"sloop-bundle\""));
        assert!(refused(&|m| m.resources.vcpus = 0).contains("resources"));
        assert!(refused(&|m| m.base.title = "a\u{1b}[2J".into()).contains("base.title"));
        assert!(refused(&|m| m.overlay.virtual_size = 1 << 50).contains("virtualSize"));
        let extra = String::from_utf8(example().to_bytes()).unwrap().replacen(
            '{',
            "{\"privateKey\": \"x\",",
            1,
        );
        assert!(
            BundleManifest::parse(extra.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("privateKey")
        );
    }
}
