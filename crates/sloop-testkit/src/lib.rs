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

/// A signed HEPiX image list naming one image, `image`, at `url`, endorsed by a fresh endorser
/// whose fresh CA is installed in `dir/anchors`; the list is written to `dir/list.image_list`.
/// Returns the list's path and the anchors folder (for `catalog add --ca-dir`).
pub fn signed_list(image: &Path, url: &str, dir: &Path) -> (PathBuf, PathBuf) {
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
    let sha512 = sha512_file(image);
    let size = std::fs::metadata(image).unwrap().len();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let list = format!(
        r#"{{"hv:imagelist": {{
  "dc:date:created": "{created}", "dc:date:expires": "{expires}",
  "dc:description": "A test list", "dc:identifier": "6f0e2a3c-0b1d-4c5e-8f9a-0123456789ab",
  "dc:source": "sloop.invalid", "dc:title": "Grid test",
  "hv:endorser": {{"hv:x509": {{"dc:creator": "Test", "hv:ca": "{CA}", "hv:dn": "{ENDORSER}",
    "hv:email": "test@sloop.invalid"}}}},
  "hv:images": [{{"hv:image": {{
    "dc:description": "The test image", "dc:identifier": "{id}", "dc:title": "Grid test image",
    "hv:format": "QCOW2", "hv:hypervisor": "QEMU,KVM", "hv:size": {size}, "hv:uri": "{url}",
    "hv:version": "1", "sl:arch": "x86_64", "sl:checksum:sha512": "{sha512}",
    "sl:comments": "", "sl:os": "Linux", "sl:osversion": "Debian 12"}}}}],
  "hv:uri": "https://sloop.invalid/grid-test.image_list", "hv:version": "1"}}}}"#,
        created = rfc3339(now - time::Duration::hours(1)),
        expires = rfc3339(now + time::Duration::days(10)),
        id = "0b5e7c1a-2d3f-4a6b-9c8d-7e6f5a4b3c2d",
    );
    let signed = pki::sign_smime(list.as_bytes(), &endorser).unwrap();
    let path = dir.join("list.image_list");
    std::fs::write(&path, signed).unwrap();
    (path, anchors)
}
