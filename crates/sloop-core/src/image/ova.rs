//! OVA archives, as VirtualBox, VMware and the grid's image lists publish them: a tar holding an
//! OVF descriptor (XML) and the disk files it names. Sloop reads the descriptor, takes the one
//! disk it names and leaves it where it is: qemu-img reads it at its offset inside the archive,
//! so nothing is unpacked.
//!
//! The archive is untrusted: every member must be a plain file with a plain name (no folder, no
//! `..`, no link or device), the descriptor must name exactly one disk, as a member of the
//! archive (never a URL or a path), stored uncompressed.

use std::io::Read;
use std::path::Path;

use quick_xml::events::Event;

/// How large a descriptor is read; real ones are a few KiB.
const MAX_DESCRIPTOR: u64 = 4 << 20;
/// How many members an archive may have; real ones have two to four.
const MAX_MEMBERS: usize = 256;

/// The disk an OVA's descriptor names, where it lies in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvaDisk {
    /// The member's name.
    pub member: String,
    /// Where its bytes start in the archive, and how many there are.
    pub offset: u64,
    pub size: u64,
    /// qemu-img's name for the format the descriptor says (`vmdk`, `vdi`, `qcow2`, `raw`), when
    /// it says one Sloop knows.
    pub format: Option<String>,
}

/// True when `head` (the first 512 bytes or more) is a tar header.
pub fn is_tar(head: &[u8]) -> bool {
    head.len() >= 263 && &head[257..262] == b"ustar"
}

/// Reads the archive's member list and its descriptor; the one disk it names, or why not.
pub fn read(path: &Path) -> Result<OvaDisk, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("it cannot be read ({e})"))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries_with_seek()
        .map_err(|e| format!("it is not a readable tar archive ({e})"))?;
    let mut members: Vec<(String, u64, u64)> = Vec::new();
    let mut descriptor: Option<(String, String)> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("it is not a readable tar archive ({e})"))?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let name = plain_name(&entry.path_bytes())?;
        if !kind.is_file() {
            return Err(format!(
                "its member {name:?} is not a plain file (tar type {:?}); an OVA holds only files",
                kind.as_byte() as char
            ));
        }
        if members.iter().any(|(n, _, _)| *n == name) {
            return Err(format!("it holds two members named {name:?}"));
        }
        if members.len() == MAX_MEMBERS {
            return Err(format!("it holds more than {MAX_MEMBERS} members"));
        }
        let size = entry.size();
        if name.to_ascii_lowercase().ends_with(".ovf") {
            if descriptor.is_some() {
                return Err("it holds more than one OVF descriptor".into());
            }
            if size > MAX_DESCRIPTOR {
                return Err(format!(
                    "its OVF descriptor {name:?} is {size} bytes, more than a descriptor can be"
                ));
            }
            let mut text = String::new();
            entry
                .by_ref()
                .take(MAX_DESCRIPTOR)
                .read_to_string(&mut text)
                .map_err(|e| format!("its OVF descriptor {name:?} is not UTF-8 text ({e})"))?;
            descriptor = Some((name.clone(), text));
        }
        members.push((name, entry.raw_file_position(), size));
    }
    let (ovf_name, ovf) =
        descriptor.ok_or("it holds no OVF descriptor (a member ending in .ovf)")?;
    let named = disk_in_descriptor(&ovf).map_err(|e| format!("its descriptor {ovf_name:?} {e}"))?;
    let (member, offset, size) = members
        .iter()
        .find(|(n, _, _)| *n == named.href)
        .cloned()
        .ok_or_else(|| {
            format!(
                "its descriptor names the disk {:?}, which the archive does not hold",
                named.href
            )
        })?;
    Ok(OvaDisk {
        member,
        offset,
        size,
        format: named.format,
    })
}

/// A member name that is one plain file name: no folder, not `.` or `..`, no control
/// characters.
fn plain_name(raw: &[u8]) -> Result<String, String> {
    let name = String::from_utf8_lossy(raw).into_owned();
    let plain = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.chars().any(char::is_control);
    if plain {
        Ok(name)
    } else {
        Err(format!(
            "its member {:?} is not a plain name inside the archive",
            name.escape_debug().to_string()
        ))
    }
}

#[derive(Debug, PartialEq, Eq)]
struct NamedDisk {
    href: String,
    format: Option<String>,
}

/// The one disk an OVF descriptor names: its `Disk` element's `fileRef` resolved through the
/// `References/File` elements, by local names (OVF 1.x and 2.x use different namespaces).
fn disk_in_descriptor(xml: &str) -> Result<NamedDisk, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut files: Vec<(String, String, bool)> = Vec::new();
    let mut disks: Vec<(String, String)> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("is not well-formed XML ({e})"))?;
        let element = match &event {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        let local = element.local_name();
        let local = local.into_inner();
        let wanted: &[&str] = match local {
            "File" => &["id", "href", "compression"],
            "Disk" => &["fileRef", "format"],
            _ => continue,
        };
        let mut values = vec![String::new(); wanted.len()];
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|e| format!("is not well-formed XML ({e})"))?;
            let key = attribute.key.local_name();
            if let Some(i) = wanted.iter().position(|w| *w == key.into_inner()) {
                values[i] = attribute
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(|e| format!("is not well-formed XML ({e})"))?
                    .into_owned();
            }
        }
        if local == "File" {
            let compressed = !values[2].is_empty() && values[2] != "identity";
            files.push((values[0].clone(), values[1].clone(), compressed));
        } else {
            disks.push((values[0].clone(), values[1].clone()));
        }
    }
    let (file_ref, format) = match disks.as_slice() {
        [] => return Err("names no disk".into()),
        [one] => one.clone(),
        more => {
            return Err(format!(
                "names {} disks; Sloop runs machines with one disk",
                more.len()
            ));
        }
    };
    let (_, href, compressed) = files
        .iter()
        .find(|(id, _, _)| *id == file_ref)
        .ok_or_else(|| format!("names its disk's file {file_ref:?} nowhere in its References"))?;
    if *compressed {
        return Err(format!(
            "stores its disk {href:?} compressed inside the archive, which Sloop does not read; ask the image's endorser for a plain OVA"
        ));
    }
    plain_name(href.as_bytes()).map_err(|_| {
        format!("names its disk {href:?} outside the archive; a disk must be a member of it")
    })?;
    Ok(NamedDisk {
        href: href.clone(),
        format: format_of(&format),
    })
}

/// qemu-img's name for an OVF `Disk/@format` URI.
fn format_of(uri: &str) -> Option<String> {
    let lower = uri.to_ascii_lowercase();
    let name = if lower.contains("vmdk") {
        "vmdk"
    } else if lower.contains("qcow") {
        "qcow2"
    } else if lower.contains("vdi") || lower.contains("virtualbox") {
        "vdi"
    } else if lower.contains("vhd") {
        "vpc"
    } else {
        return None;
    };
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn virtualbox_ovf(disk: &str) -> String {
        sloop_testkit::virtualbox_ovf(disk, 1 << 30, 4096)
    }

    fn archive(dir: &Path, members: &[(&str, &[u8])]) -> std::path::PathBuf {
        let path = dir.join("test.ova");
        sloop_testkit::tar_as_written(&path, members);
        path
    }

    #[test]
    fn the_disk_the_descriptor_names_is_found_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let disk = vec![7u8; 3000];
        let path = archive(
            dir.path(),
            &[
                ("test.ovf", virtualbox_ovf("test-disk001.vmdk").as_bytes()),
                ("test.mf", b"SHA256(test.ovf)= 00\n"),
                ("test-disk001.vmdk", &disk),
            ],
        );
        let found = read(&path).unwrap();
        assert_eq!(found.member, "test-disk001.vmdk");
        assert_eq!(found.size, 3000);
        assert_eq!(found.format.as_deref(), Some("vmdk"));
        let bytes = std::fs::read(&path).unwrap();
        let at = found.offset as usize;
        assert_eq!(&bytes[at..at + 3000], &disk[..]);
        assert!(is_tar(&bytes));
    }

    #[test]
    fn hostile_archives_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let ovf = virtualbox_ovf("disk.vmdk");
        let refusal = |members: &[(&str, &[u8])]| read(&archive(dir.path(), members)).unwrap_err();

        let up = refusal(&[("test.ovf", ovf.as_bytes()), ("../x", b"disk")]);
        assert!(
            up.contains("\"../x\" is not a plain name inside the archive"),
            "{up}"
        );
        let nested = refusal(&[("test.ovf", ovf.as_bytes()), ("a/disk.vmdk", b"d")]);
        assert!(nested.contains("not a plain name"), "{nested}");
        let outside = refusal(&[("test.ovf", virtualbox_ovf("../../etc/shadow").as_bytes())]);
        assert!(outside.contains("outside the archive"), "{outside}");
        let url = refusal(&[(
            "test.ovf",
            virtualbox_ovf("http://example.org/d.vmdk").as_bytes(),
        )]);
        assert!(url.contains("outside the archive"), "{url}");
        let missing = refusal(&[("test.ovf", ovf.as_bytes())]);
        assert!(
            missing.contains("which the archive does not hold"),
            "{missing}"
        );
        let none = refusal(&[("disk.vmdk", b"d")]);
        assert!(none.contains("no OVF descriptor"), "{none}");
        let twice = refusal(&[
            ("test.ovf", ovf.as_bytes()),
            ("disk.vmdk", b"a"),
            ("disk.vmdk", b"b"),
        ]);
        assert!(twice.contains("two members"), "{twice}");
        let broken = refusal(&[("test.ovf", b"<Envelope><Disk"), ("disk.vmdk", b"d")]);
        assert!(broken.contains("not well-formed"), "{broken}");
        let not_tar = dir.path().join("noise.ova");
        std::fs::write(&not_tar, vec![1u8; 2048]).unwrap();
        assert!(read(&not_tar).is_err());
    }

    #[test]
    fn descriptors_with_no_disk_two_disks_or_a_compressed_disk_are_refused() {
        let two = virtualbox_ovf("a.vmdk").replace(
            "</DiskSection>",
            r#"<Disk ovf:diskId="vmdisk2" ovf:fileRef="file1" ovf:format="x"/></DiskSection>"#,
        );
        assert!(disk_in_descriptor(&two).unwrap_err().contains("2 disks"));
        let none = r#"<Envelope xmlns:ovf="o"><References/></Envelope>"#;
        assert_eq!(disk_in_descriptor(none).unwrap_err(), "names no disk");
        let packed = virtualbox_ovf("a.vmdk").replace(
            r#"ovf:href="a.vmdk""#,
            r#"ovf:href="a.vmdk" ovf:compression="gzip""#,
        );
        assert!(
            disk_in_descriptor(&packed)
                .unwrap_err()
                .contains("compressed")
        );
        // OVF 2 (another namespace, attributes in another order) reads the same.
        let ovf2 = r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/2" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2"><References><File ovf:href="d.qcow2" ovf:id="f"/></References><DiskSection><Disk ovf:format="http://www.gnome.org/~markmc/qcow-image-format.html" ovf:fileRef="f" ovf:diskId="d"/></DiskSection></Envelope>"#;
        assert_eq!(
            disk_in_descriptor(ovf2).unwrap(),
            NamedDisk {
                href: "d.qcow2".into(),
                format: Some("qcow2".into())
            }
        );
    }
}
