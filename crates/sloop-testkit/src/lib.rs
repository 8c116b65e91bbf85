//! What the integration tests of every Sloop crate share: the test images (built, or taken from
//! the build cache, by the project's recipes), file helpers, and a grid user made on the spot
//! (a test CA as a trust anchor, a certificate and a passphrase-protected key). A
//! dev-dependency only: nothing here ships.

// Fixtures panic on failure by design: that is how the test using them fails.
#![allow(clippy::unwrap_used)]

pub mod relay;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha512};
use sloop_core::pki::{self, CertificateSpec, Identity};

/// The repository's top folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Which test image.
#[derive(Debug, Clone, Copy)]
pub enum TestImage {
    /// busybox + dropbear, boots in seconds under TCG.
    Tiny,
    /// Debian with real cloud-init and OpenSSH.
    Cloud,
}

/// The image's path: `SLOOP_TEST_IMAGE` / `SLOOP_TEST_CLOUD_IMAGE`, else built (or taken from the
/// build cache) by the project's recipe.
pub fn test_image(kind: TestImage) -> PathBuf {
    let (var, script) = match kind {
        TestImage::Tiny => ("SLOOP_TEST_IMAGE", "assets/test-image/build.sh"),
        TestImage::Cloud => ("SLOOP_TEST_CLOUD_IMAGE", "assets/test-image/build-cloud.sh"),
    };
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let output = Command::new("bash")
        .arg(repo_root().join(script))
        .stderr(Stdio::inherit())
        .output()
        .expect("run the test image recipe");
    assert!(output.status.success(), "{script} failed");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 path");
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("the recipe prints the image path")
            .trim(),
    )
}

/// The tiny test image's ISO variant (µCernVM style: boots from a read-only CD, keeps its
/// changes on an empty disk it formats), which `build.sh` writes beside the qcow2 in the same run:
/// `SLOOP_TEST_ISO`, else `sloop-test.iso` beside the tiny image.
pub fn test_iso() -> PathBuf {
    if let Some(path) = std::env::var_os("SLOOP_TEST_ISO").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let iso = test_image(TestImage::Tiny).with_file_name("sloop-test.iso");
    assert!(
        iso.is_file(),
        "{} is missing: assets/test-image/build.sh writes it beside the qcow2 (SLOOP_TEST_IMAGE_REBUILD=1 rebuilds)",
        iso.display()
    );
    iso
}

/// Lower-case hex SHA-512 of a file.
pub fn sha512_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).expect("open");
    let mut hasher = Sha512::new();
    std::io::copy(&mut file, &mut hasher).expect("read");
    hex::encode(hasher.finalize())
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// File mode bits of `path`.
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A grid user made for a test, in a folder of its own: a test CA installed as a trust anchor
/// (`certificates/`, the `X509_CERT_DIR` layout) and the user's certificate and
/// passphrase-protected key in `~/.globus` form (`.globus/`, key 0400).
#[derive(Debug)]
pub struct GridUser {
    pub dir: tempfile::TempDir,
    pub ca: Identity,
    pub user: Identity,
    pub anchors: PathBuf,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl GridUser {
    pub const DN: &'static str = "/DC=invalid/DC=sloop/O=Grid Test/CN=Jane Doe";
    pub const CA_DN: &'static str = "/DC=invalid/DC=sloop/O=Grid Test/CN=Grid Test CA";
    pub const PASSPHRASE: &'static str = "correct horse battery staple";

    /// A user whose certificate is valid from `from` to `until` (seconds from now).
    pub fn new_valid(from: i64, until: i64) -> Self {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ca = pki::issue(
            &CertificateSpec {
                subject: Self::CA_DN,
                not_before: now - 3600,
                not_after: now + 30 * 86_400,
                ca: true,
                server_names: &[],
            },
            None,
        )
        .unwrap();
        let user = pki::issue(
            &CertificateSpec {
                subject: Self::DN,
                not_before: now + from,
                not_after: now + until,
                ca: false,
                server_names: &[],
            },
            Some(&ca),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let anchors = dir.path().join("certificates");
        std::fs::create_dir(&anchors).unwrap();
        pki::install_anchor(&anchors, &ca.certificate).unwrap();
        let globus = dir.path().join(".globus");
        std::fs::create_dir(&globus).unwrap();
        let certificate = globus.join("usercert.pem");
        std::fs::write(&certificate, user.certificate.to_pem().unwrap()).unwrap();
        let key = globus.join("userkey.pem");
        let pem = user
            .key
            .private_key_to_pem_pkcs8_passphrase(
                openssl::symm::Cipher::aes_256_cbc(),
                Self::PASSPHRASE.as_bytes(),
            )
            .unwrap();
        std::fs::write(&key, pem).unwrap();
        set_mode(&key, 0o400);
        Self {
            dir,
            ca,
            user,
            anchors,
            certificate,
            key,
        }
    }

    /// A user with a certificate valid for ten days.
    pub fn new() -> Self {
        Self::new_valid(-3600, 10 * 86_400)
    }

    /// A path in the user's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The grid tools' variables for this user: the proxy at `x509up_test` and VOMS
    /// descriptions under `vomsdir/` in the user's folder, the anchors, the certificate, the
    /// key.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("X509_USER_PROXY", self.path("x509up_test")),
            ("X509_CERT_DIR", self.anchors.clone()),
            ("X509_VOMS_DIR", self.path("vomsdir")),
            ("X509_USER_CERT", self.certificate.clone()),
            ("X509_USER_KEY", self.key.clone()),
        ]
    }
}

impl Default for GridUser {
    fn default() -> Self {
        Self::new()
    }
}

/// Revokes `who` with the real `openssl ca` (its database in `work`) and installs the CA's CRL in
/// `anchors` as `<hash>.r0`, as fetch-crl leaves it, with these lastUpdate and nextUpdate
/// times (`YYYYMMDDHHMMSSZ`).
pub fn revoke(
    ca: &Identity,
    who: &openssl::x509::X509,
    anchors: &Path,
    work: &Path,
    last_update: &str,
    next_update: &str,
) {
    std::fs::create_dir_all(work).unwrap();
    std::fs::write(work.join("ca.pem"), ca.certificate.to_pem().unwrap()).unwrap();
    std::fs::write(
        work.join("ca.key"),
        ca.key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::write(work.join("who.pem"), who.to_pem().unwrap()).unwrap();
    std::fs::write(work.join("index.txt"), "").unwrap();
    std::fs::write(work.join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        work.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {0}/index.txt\ncrlnumber = {0}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 7\n",
            work.display()
        ),
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(work)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let base = ["-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem"];
    openssl(&[&["ca"], &base[..], &["-revoke", "who.pem"]].concat());
    let crl = anchors.join(format!("{:08x}.r0", ca.certificate.subject_name_hash()));
    let crl = crl.to_str().unwrap();
    let dates = [
        "-crl_lastupdate",
        last_update,
        "-crl_nextupdate",
        next_update,
    ];
    openssl(&[&["ca"], &base[..], &["-gencrl", "-out", crl], &dates[..]].concat());
}

/// One image of a test list made by [`signed_list_of`].
#[derive(Debug, Clone)]
pub struct Listed<'a> {
    pub file: &'a Path,
    pub url: String,
    pub title: &'a str,
    /// `dc:identifier`.
    pub identifier: &'a str,
    /// `hv:format`, left out when `None`.
    pub format: Option<&'a str>,
}

/// A signed HEPiX image list naming one image, `image`, at `url`, endorsed by a fresh endorser
/// whose fresh CA is installed in `dir/anchors`; the list is written to `dir/list.image_list`.
/// Returns the list's path and the anchors folder (for `catalog add --ca-dir`).
pub fn signed_list(image: &Path, url: &str, dir: &Path) -> (PathBuf, PathBuf) {
    signed_list_of(
        &[Listed {
            file: image,
            url: url.to_string(),
            title: "Grid test image",
            identifier: "0b5e7c1a-2d3f-4a6b-9c8d-7e6f5a4b3c2d",
            format: Some("QCOW2"),
        }],
        dir,
    )
}

/// [`signed_list`] naming several images, each with its own size and SHA-512.
pub fn signed_list_of(images: &[Listed<'_>], dir: &Path) -> (PathBuf, PathBuf) {
    const CA: &str = "/DC=invalid/DC=sloop/O=Grid Test/CN=Endorser CA";
    const ENDORSER: &str = "/DC=invalid/DC=sloop/O=Grid Test/CN=Image Endorser";
    let now = time::OffsetDateTime::now_utc();
    let start = now.unix_timestamp() - 3600;
    let end = now.unix_timestamp() + 10 * 86_400;
    let spec = |subject, ca| CertificateSpec {
        subject,
        not_before: start,
        not_after: end,
        ca,
        server_names: &[],
    };
    let ca = pki::issue(&spec(CA, true), None).unwrap();
    let endorser = pki::issue(&spec(ENDORSER, false), Some(&ca)).unwrap();
    let anchors = dir.join("anchors");
    std::fs::create_dir_all(&anchors).unwrap();
    pki::install_anchor(&anchors, &ca.certificate).unwrap();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let entries: Vec<serde_json::Value> = images
        .iter()
        .map(|image| {
            let mut entry = serde_json::json!({
                "dc:description": "A test image",
                "dc:identifier": image.identifier,
                "dc:title": image.title,
                "hv:hypervisor": "QEMU,KVM",
                "hv:size": std::fs::metadata(image.file).unwrap().len(),
                "hv:uri": image.url,
                "hv:version": "1",
                "sl:arch": "x86_64",
                "sl:checksum:sha512": sha512_file(image.file),
                "sl:comments": "",
                "sl:os": "Linux",
                "sl:osversion": "Debian 12",
            });
            if let Some(format) = image.format {
                entry["hv:format"] = format.into();
            }
            serde_json::json!({ "hv:image": entry })
        })
        .collect();
    let list = serde_json::json!({"hv:imagelist": {
        "dc:date:created": rfc3339(now - time::Duration::hours(1)),
        "dc:date:expires": rfc3339(now + time::Duration::days(10)),
        "dc:description": "A test list",
        "dc:identifier": "6f0e2a3c-0b1d-4c5e-8f9a-0123456789ab",
        "dc:source": "sloop.invalid",
        "dc:title": "Grid test",
        "hv:endorser": {"hv:x509": {"dc:creator": "Test", "hv:ca": CA, "hv:dn": ENDORSER,
            "hv:email": "test@sloop.invalid"}},
        "hv:images": entries,
        "hv:uri": "https://sloop.invalid/grid-test.image_list",
        "hv:version": "1",
    }})
    .to_string();
    let signed = pki::sign_smime(list.as_bytes(), &endorser).unwrap();
    let path = dir.join("list.image_list");
    std::fs::write(&path, signed).unwrap();
    (path, anchors)
}

/// Panics unless the qcow2 file `qcow2` holds the same disk as the raw file `raw`
/// (`qemu-img compare`, which reads both as the guest would).
pub fn assert_same_disk(raw: &Path, qcow2: &Path) {
    let dir = raw.parent().unwrap_or(Path::new("/"));
    run_in(
        dir,
        "qemu-img",
        &[
            "compare",
            "-q",
            "-f",
            "raw",
            "-F",
            "qcow2",
            &raw.to_string_lossy(),
            &qcow2.to_string_lossy(),
        ],
    );
}

/// Runs `program` with `args` in `dir`; panics with its stderr when it fails.
pub fn run_in(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A descriptor as VirtualBox 7 writes it for a one-disk machine (the parts a reader needs, in
/// VirtualBox's layout and namespaces).
pub fn virtualbox_ovf(disk: &str, capacity: u64, disk_size: u64) -> String {
    format!(
        r#"<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="{disk}" ovf:size="{disk_size}"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="{capacity}" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="4a1f7d1e-6a0b-4c54-9b55-0d1f3c7e2a10"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="sloop-tiny">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="96">
      <Info>The kind of installed guest operating system</Info>
      <Description>Debian_64</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>sloop-tiny</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>Disk Image</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>7</rasd:InstanceID>
        <rasd:Parent>5</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// A disk image's virtual size, by qemu-img.
pub fn virtual_size(image: &Path) -> u64 {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(image)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["virtual-size"].as_u64().unwrap()
}

/// Writes `ova`: the qcow2 `image` exported as VirtualBox does, a tar of the OVF descriptor, the
/// disk as a streamOptimized VMDK and a SHA-256 manifest, in that order.
pub fn make_ova(image: &Path, ova: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let disk = "sloop-tiny-disk001.vmdk";
    stream_optimized_vmdk(image, &d.join(disk));
    let disk_size = std::fs::metadata(d.join(disk)).unwrap().len();
    std::fs::write(
        d.join("sloop-tiny.ovf"),
        virtualbox_ovf(disk, virtual_size(image), disk_size),
    )
    .unwrap();
    let sha256 = |name: &str| {
        let out = Command::new("sha256sum")
            .arg(name)
            .current_dir(d)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    std::fs::write(
        d.join("sloop-tiny.mf"),
        format!(
            "SHA256 (sloop-tiny.ovf) = {}\nSHA256 ({disk}) = {}\n",
            sha256("sloop-tiny.ovf"),
            sha256(disk)
        ),
    )
    .unwrap();
    run_in(
        d,
        "tar",
        &[
            "--format=ustar",
            "-cf",
            &ova.to_string_lossy(),
            "sloop-tiny.ovf",
            disk,
            "sloop-tiny.mf",
        ],
    );
}

/// Converts the qcow2 `image` to a streamOptimized VMDK at `out`, as VMware and VirtualBox
/// export disks.
pub fn stream_optimized_vmdk(image: &Path, out: &Path) {
    run_in(
        Path::new("/"),
        "qemu-img",
        &[
            "convert",
            "-f",
            "qcow2",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            &image.to_string_lossy(),
            &out.to_string_lossy(),
        ],
    );
}

/// Writes a tar at `path` whose members (regular files) are named byte for byte as given, as a
/// hostile archive would be: the tar crate's own path setters refuse `..`.
pub fn tar_as_written(path: &Path, members: &[(&str, &[u8])]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.finish().unwrap();
}
