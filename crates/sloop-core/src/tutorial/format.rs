//! The tutorial file (`*.sloop-tutorial`): TOML that pins a catalog, an image, a trainer's bundle
//! and material by digest. Documented for trainers in docs/tutorial-format.md; a change here is
//! a change there, and a new `format` number when old readers would misread it.
//!
//! Every file a tutorial names has a `source` (where it lives: an https, http or `file://` URL, an
//! absolute path, or a path relative to the tutorial file) and, in a mirror, a `mirror` (a plain
//! file name beside the tutorial file), tried first. The file itself is untrusted input: it is
//! parsed with unknown fields refused, and every digest, name and size is checked here before
//! anything is fetched.

use serde::{Deserialize, Serialize};

use crate::machine::manifest::{MachineName, Resources};

/// What a tutorial file's name ends with.
pub const EXTENSION: &str = "sloop-tutorial";
/// The one format this Sloop reads and writes.
pub const FORMAT: u32 = 1;
/// A tutorial file is text: more than this is not one.
pub const MAX_BYTES: u64 = 256 * 1024;

/// A tutorial file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tutorial {
    pub format: u32,
    /// The student's machine is called this; opening the tutorial again finds it by this name.
    pub name: String,
    pub title: String,
    /// Shown beside the terminal (Markdown).
    #[serde(default)]
    pub welcome: String,
    /// The command (or file) the student starts with, shown with the welcome text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    pub machine: MachineSpec,
    pub catalog: CatalogPin,
    pub image: ImagePin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundlePin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<FilePin>,
}

/// The machine's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
}

impl From<MachineSpec> for Resources {
    fn from(spec: MachineSpec) -> Self {
        Self {
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            disk_gib: spec.disk_gib,
        }
    }
}

/// The image list the image is certified by, pinned as `catalog add` pins one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogPin {
    /// Where the signed list lives.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// The list's `dc:identifier`.
    pub identifier: String,
    /// The endorser's subject and its CA's subject (oneline DNs).
    pub endorser_dn: String,
    pub endorser_ca: String,
    /// A CA certificate (PEM) trusted for this list alone, for a list under a CA outside the
    /// grid's (a course's own, the offline demo's). Without it the grid CA folder decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
}

/// The certified image, by its list entry and its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePin {
    /// Its `dc:identifier` in the list.
    pub identifier: String,
    pub sha512: String,
    pub size: u64,
    /// The image's file beside the tutorial file; otherwise the list's `hv:uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
}

/// The trainer's changes: a signed bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundlePin {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    pub sha512: String,
    pub size: u64,
    /// Who signed it (the trainer's grid identity, oneline DN); a bundle signed by anyone else,
    /// or by nobody, is refused.
    pub signer: String,
}

impl BundlePin {
    /// The bundle as a pinned file.
    pub fn file(&self) -> FilePin {
        FilePin {
            source: self.source.clone(),
            mirror: self.mirror.clone(),
            sha512: self.sha512.clone(),
            size: self.size,
        }
    }
}

/// A file pinned by its size and SHA-512.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePin {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    pub sha512: String,
    pub size: u64,
}

/// What is wrong with a tutorial file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatProblem {
    #[error("it is not a tutorial file: {0}")]
    Syntax(String),
    #[error("it is format {0}; this Sloop reads format {FORMAT}: update Sloop")]
    Version(u32),
    #[error("{field} {value:?} {problem}")]
    Field {
        field: &'static str,
        value: String,
        problem: &'static str,
    },
}

impl Tutorial {
    /// Reads and checks a tutorial file's text.
    pub fn parse(text: &str) -> Result<Self, FormatProblem> {
        // The version first, so that a newer file says "update Sloop", not "unknown field".
        #[derive(Deserialize)]
        struct Version {
            format: u32,
        }
        let version: Version =
            toml::from_str(text).map_err(|e| FormatProblem::Syntax(e.message().to_string()))?;
        if version.format != FORMAT {
            return Err(FormatProblem::Version(version.format));
        }
        let tutorial: Self =
            toml::from_str(text).map_err(|e| FormatProblem::Syntax(e.message().to_string()))?;
        tutorial.check()?;
        Ok(tutorial)
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        toml::to_string(self).expect("a tutorial always serialises")
    }

    fn check(&self) -> Result<(), FormatProblem> {
        let field = |field: &'static str, value: &str, problem: &'static str| {
            Err(FormatProblem::Field {
                field,
                value: value.chars().take(80).collect(),
                problem,
            })
        };
        if self.name.parse::<MachineName>().is_err() {
            return field(
                "name",
                &self.name,
                "is not a machine name (letters, digits and dashes)",
            );
        }
        if self.title.trim().is_empty() || self.title.len() > 200 {
            return field("title", &self.title, "must be 1 to 200 characters");
        }
        let m = self.machine;
        if !(1..=64).contains(&m.vcpus) || !(128..=1 << 20).contains(&m.memory_mib) {
            return field(
                "machine",
                &format!("{} vCPUs, {} MiB", m.vcpus, m.memory_mib),
                "is out of range",
            );
        }
        if !(1..=4096).contains(&m.disk_gib) {
            return field(
                "machine.disk_gib",
                &m.disk_gib.to_string(),
                "is out of range",
            );
        }
        // Text shown in terminals and windows: no escape sequences or other control characters.
        let control = |text: &str, allow_lines: bool| {
            text.chars()
                .any(|c| c.is_control() && !(allow_lines && (c == '\n' || c == '\t')))
        };
        if control(&self.title, false) {
            return field("title", &self.title, "holds control characters");
        }
        if control(&self.welcome, true) {
            return field("welcome", "", "holds control characters");
        }
        if let Some(start) = &self.start
            && control(start, false)
        {
            return field("start", start, "holds control characters");
        }
        let mut digests = vec![("image.sha512", &self.image.sha512)];
        let mut mirrors = vec![
            ("catalog.mirror", &self.catalog.mirror),
            ("image.mirror", &self.image.mirror),
        ];
        let mut sources = vec![("catalog.source", &self.catalog.source)];
        if let Some(bundle) = &self.bundle {
            digests.push(("bundle.sha512", &bundle.sha512));
            mirrors.push(("bundle.mirror", &bundle.mirror));
            sources.push(("bundle.source", &bundle.source));
            if bundle.signer.trim().is_empty() {
                return field(
                    "bundle.signer",
                    &bundle.signer,
                    "must name the trainer's DN",
                );
            }
        }
        if let Some(material) = &self.material {
            digests.push(("material.sha512", &material.sha512));
            mirrors.push(("material.mirror", &material.mirror));
            sources.push(("material.source", &material.source));
        }
        for (name, digest) in digests {
            let hex = digest.len() == 128
                && digest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return field(name, digest, "is not a SHA-512 (128 lowercase hex digits)");
            }
        }
        for (name, mirror) in mirrors {
            if let Some(mirror) = mirror
                && !is_plain_name(mirror)
            {
                return field(
                    name,
                    mirror,
                    "must be a plain file name beside the tutorial",
                );
            }
        }
        for (name, source) in sources {
            if source.is_empty() || source.contains('\0') {
                return field(name, source, "is empty");
            }
        }
        if let Some(anchor) = &self.catalog.anchor
            && !anchor.contains("-----BEGIN CERTIFICATE-----")
        {
            return field("catalog.anchor", anchor, "is not a PEM certificate");
        }
        Ok(())
    }

    /// The digests that make this tutorial this tutorial: two files with equal pins give every
    /// student the same start.
    pub fn pins(&self) -> Vec<String> {
        let mut pins = vec![
            self.name.clone(),
            self.catalog.identifier.clone(),
            self.catalog.endorser_dn.clone(),
            self.image.sha512.clone(),
        ];
        pins.extend(self.bundle.iter().map(|b| b.sha512.clone()));
        pins.extend(self.material.iter().map(|m| m.sha512.clone()));
        pins
    }
}

/// A file name with no folder in it: what a mirror entry must be.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tutorial {
        Tutorial {
            format: FORMAT,
            name: "root-course".into(),
            title: "ROOT course, day 1".into(),
            welcome: "# Welcome\n\nOpen `hello.C`.".into(),
            start: Some("root -l hello.C".into()),
            machine: MachineSpec {
                vcpus: 1,
                memory_mib: 512,
                disk_gib: 2,
            },
            catalog: CatalogPin {
                source: "https://example.org/vo.image_list".into(),
                mirror: None,
                identifier: "6f0e2a3c".into(),
                endorser_dn: "/DC=org/CN=Endorser".into(),
                endorser_ca: "/DC=org/CN=CA".into(),
                anchor: None,
            },
            image: ImagePin {
                identifier: "0b5e".into(),
                sha512: "a".repeat(128),
                size: 1000,
                mirror: None,
            },
            bundle: Some(BundlePin {
                source: "root-course.sloop".into(),
                mirror: Some("root-course.sloop".into()),
                sha512: "b".repeat(128),
                size: 10,
                signer: "/DC=org/CN=Trainer".into(),
            }),
            material: None,
        }
    }

    #[test]
    fn a_tutorial_reads_back_what_was_written() {
        let tutorial = sample();
        let text = tutorial.to_text();
        assert!(text.contains("[bundle]"), "{text}");
        assert_eq!(Tutorial::parse(&text).unwrap(), tutorial);
    }

    #[test]
    fn bad_tutorials_are_refused_with_the_field_named() {
        let said = |edit: &dyn Fn(&mut Tutorial)| {
            let mut tutorial = sample();
            edit(&mut tutorial);
            Tutorial::parse(&tutorial.to_text())
                .unwrap_err()
                .to_string()
        };
        assert!(said(&|t| t.image.sha512 = "abc".into()).starts_with("image.sha512 \"abc\""));
        assert!(
            said(&|t| t.bundle.as_mut().unwrap().mirror = Some("../x".into()))
                .contains("plain file name")
        );
        assert!(said(&|t| t.name = "../evil".into()).starts_with("name "));
        assert!(said(&|t| t.format = 2).contains("update Sloop"));
        assert!(
            said(&|t| t.welcome = "hi \u{1b}]52;c;ZXZpbA==\u{7}".into())
                .contains("control characters")
        );
        let unknown = Tutorial::parse(&format!("{}\nsurprise = 1\n", sample().to_text()))
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("surprise"), "{unknown}");
    }
}
