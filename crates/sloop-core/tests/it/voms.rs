//! VOMS attribute certificates made by the real VOMS tools: `voms-proxy-fake` (Debian's
//! voms-clients) signs ACs with a VOMS server certificate from a test CA made here, and what
//! `sloop_core::proxy::voms` reads from the proxy must be what `voms-proxy-info` prints, with the
//! AC verified by it against the test CA and an LSC file.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::x509::X509;
use sloop_core::pki::{self, CertificateSpec, Identity};
use sloop_core::proxy::voms::{self, VomsAttributes};
use time::OffsetDateTime;

const CA_DN: &str = "/DC=invalid/DC=sloop/O=VOMS Test/CN=VOMS Test CA";
const USER_DN: &str = "/DC=invalid/DC=sloop/O=VOMS Test/CN=Jane Doe";
const HOST_DN: &str = "/DC=invalid/DC=sloop/O=VOMS Test/CN=voms.example.org";
const FQANS: [&str; 2] = [
    "/testvo/Role=NULL/Capability=NULL",
    "/testvo/analysis/Role=NULL/Capability=NULL",
];

/// A test CA, a user and a VOMS server, on disk the way the VOMS tools want them.
struct Setup {
    dir: tempfile::TempDir,
    user_certificate: PathBuf,
    user_key: PathBuf,
    host_certificate: PathBuf,
    host_key: PathBuf,
    /// X509_CERT_DIR: the CA as `<hash>.0`.
    certificates: PathBuf,
    /// X509_VOMS_DIR: `<vo>/<host>.lsc` for each VO.
    vomsdir: PathBuf,
}

fn issue(subject: &str, issuer: Option<&Identity>) -> Identity {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    pki::issue(
        &CertificateSpec {
            subject,
            not_before: now - 3600,
            not_after: now + 2 * 86_400,
            ca: issuer.is_none(),
            server_names: &[],
        },
        issuer,
    )
    .unwrap()
}

/// Writes the certificate and its unencrypted PEM key (mode 0600, as grid tools demand).
fn write_identity(dir: &Path, stem: &str, identity: &Identity) -> (PathBuf, PathBuf) {
    let certificate = dir.join(format!("{stem}cert.pem"));
    let key = dir.join(format!("{stem}key.pem"));
    std::fs::write(&certificate, identity.certificate.to_pem().unwrap()).unwrap();
    std::fs::write(&key, identity.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (certificate, key)
}

impl Setup {
    fn new(vos: &[&str]) -> Self {
        require_voms_clients();
        let dir = tempfile::tempdir().unwrap();
        let ca = issue(CA_DN, None);
        let user = issue(USER_DN, Some(&ca));
        let host = issue(HOST_DN, Some(&ca));
        let (user_certificate, user_key) = write_identity(dir.path(), "user", &user);
        let (host_certificate, host_key) = write_identity(dir.path(), "host", &host);
        let certificates = dir.path().join("certificates");
        std::fs::create_dir(&certificates).unwrap();
        pki::install_anchor(&certificates, &ca.certificate).unwrap();
        // The LSC file: the VOMS server's DN, then its CA's, one per line.
        let vomsdir = dir.path().join("vomsdir");
        for vo in vos {
            let vo_dir = vomsdir.join(vo);
            std::fs::create_dir_all(&vo_dir).unwrap();
            std::fs::write(
                vo_dir.join("voms.example.org.lsc"),
                format!("{HOST_DN}\n{CA_DN}\n"),
            )
            .unwrap();
        }
        Setup {
            dir,
            user_certificate,
            user_key,
            host_certificate,
            host_key,
            certificates,
            vomsdir,
        }
    }

    /// Runs `voms-proxy-fake` for one VO with `extra` arguments; returns the proxy's path.
    fn fake_proxy(
        &self,
        name: &str,
        vo: &str,
        fqans: &[&str],
        port: u16,
        extra: &[&str],
    ) -> PathBuf {
        let out = self.dir.path().join(name);
        let mut command = Command::new("voms-proxy-fake");
        command
            .args(["-rfc", "-q", "-bits", "2048", "-hours", "12"])
            .arg("-cert")
            .arg(&self.user_certificate)
            .arg("-key")
            .arg(&self.user_key)
            .arg("-certdir")
            .arg(&self.certificates)
            .arg("-hostcert")
            .arg(&self.host_certificate)
            .arg("-hostkey")
            .arg(&self.host_key)
            .args(["-voms", vo, "-uri", &format!("voms.example.org:{port}")]);
        for fqan in fqans {
            command.args(["-fqan", fqan]);
        }
        command.args(extra).arg("-out").arg(&out);
        // OpenSSL's seed file: keeps its "cannot open ~/.rnd" notice out of the way.
        command.env("RANDFILE", self.dir.path().join("rnd"));
        let output = command.output().unwrap();
        assert!(
            output.status.success() && out.exists(),
            "voms-proxy-fake failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        out
    }

    /// `voms-proxy-info -all` on `proxy`, verifying the ACs against the test CA and LSC files.
    /// Returns the lines of each `=== VO <vo> extension information ===` block as key → values.
    fn voms_proxy_info(&self, proxy: &Path) -> Vec<BTreeMap<String, Vec<String>>> {
        let output = Command::new("voms-proxy-info")
            .args(["-all", "-file"])
            .arg(proxy)
            .env("X509_CERT_DIR", &self.certificates)
            .env("X509_VOMS_DIR", &self.vomsdir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "voms-proxy-info failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let mut blocks: Vec<BTreeMap<String, Vec<String>>> = Vec::new();
        for line in stdout.lines() {
            if line.starts_with("=== VO ") {
                blocks.push(BTreeMap::new());
            } else if let (Some(block), Some((key, value))) =
                (blocks.last_mut(), line.split_once(':'))
            {
                block
                    .entry(key.trim().to_string())
                    .or_default()
                    .push(value.trim().to_string());
            }
        }
        blocks
    }
}

fn require_voms_clients() {
    if let Err(e) = Command::new("voms-proxy-fake").arg("-version").output() {
        panic!(
            "cannot run voms-proxy-fake ({e}): these tests need Debian's voms-clients, which \
             scripts/install-deps.sh installs"
        );
    }
}

/// The proxy file's first certificate (the proxy itself), DER.
fn proxy_certificate(proxy: &Path) -> Vec<u8> {
    let pem = std::fs::read(proxy).unwrap();
    X509::from_pem(&pem).unwrap().to_der().unwrap()
}

/// `voms-proxy-info`'s `H:MM:SS` time left in seconds.
fn seconds(time_left: &str) -> i64 {
    let parts: Vec<i64> = time_left.split(':').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 3, "time left {time_left:?}");
    parts[0] * 3600 + parts[1] * 60 + parts[2]
}

fn unix(rfc3339: &str) -> i64 {
    OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

/// Checks one parsed AC against `voms-proxy-info`'s block for it.
fn assert_matches_voms_proxy_info(parsed: &VomsAttributes, info: &BTreeMap<String, Vec<String>>) {
    let one = |key: &str| -> &str {
        match info.get(key).map(Vec::as_slice) {
            Some([value]) => value,
            other => panic!("voms-proxy-info printed {key:?} as {other:?}"),
        }
    };
    assert_eq!(parsed.vo, one("VO"));
    assert_eq!(parsed.issuer, one("issuer"));
    assert_eq!(parsed.uri.as_deref(), Some(one("uri")));
    assert_eq!(
        Some(&parsed.fqans),
        info.get("attribute"),
        "FQANs differ from voms-proxy-info's"
    );
    // Both count from about the same moment; allow for the seconds between the two runs.
    let printed = seconds(one("timeleft"));
    assert!(
        (parsed.seconds_left - printed).abs() <= 5,
        "seconds left: parsed {}, voms-proxy-info {printed}",
        parsed.seconds_left
    );
}

#[test]
fn voms_proxy_fake_ac_reads_as_voms_proxy_info_prints_it() {
    let setup = Setup::new(&["testvo"]);
    let before = OffsetDateTime::now_utc().unix_timestamp();
    // AC valid 2 hours from 10 minutes ago, the proxy 12 hours from now: the AC's own times must
    // be the ones read. -newformat: the holder is named by the user certificate's issuer, as
    // VOMS servers do.
    let proxy = setup.fake_proxy(
        "x509up_new",
        "testvo",
        &FQANS,
        15000,
        &["-newformat", "-vomslife", "2", "-pastac", "600"],
    );
    let after = OffsetDateTime::now_utc().unix_timestamp();

    let now = OffsetDateTime::now_utc();
    let parsed = voms::from_certificate(&proxy_certificate(&proxy), now).unwrap();
    let printed = setup.voms_proxy_info(&proxy);

    assert_eq!(parsed.len(), 1, "{parsed:?}");
    assert_eq!(printed.len(), 1, "{printed:?}");
    let ac = &parsed[0];
    assert_matches_voms_proxy_info(ac, &printed[0]);
    // And the values themselves, so that a shared misreading cannot pass.
    assert_eq!(ac.vo, "testvo");
    assert_eq!(ac.fqans, FQANS);
    assert_eq!(ac.issuer, HOST_DN);
    assert_eq!(ac.holder, CA_DN);
    assert_eq!(ac.uri.as_deref(), Some("voms.example.org:15000"));
    let (not_before, not_after) = (unix(&ac.not_before), unix(&ac.not_after));
    assert_eq!(not_after - not_before, 2 * 3600);
    assert!(
        (before - 600 - 1..=after - 600 + 1).contains(&not_before),
        "not before {} is not about 10 minutes before the proxy was made",
        ac.not_before
    );
    let not_after_time = OffsetDateTime::parse(
        &ac.not_after,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(ac.seconds_left, (not_after_time - now).whole_seconds());
}

#[test]
fn old_format_ac_names_the_holder_by_subject() {
    let setup = Setup::new(&["testvo"]);
    let proxy = setup.fake_proxy("x509up_old", "testvo", &FQANS[..1], 15003, &[]);
    let parsed =
        voms::from_certificate(&proxy_certificate(&proxy), OffsetDateTime::now_utc()).unwrap();
    let printed = setup.voms_proxy_info(&proxy);
    assert_eq!((parsed.len(), printed.len()), (1, 1));
    assert_matches_voms_proxy_info(&parsed[0], &printed[0]);
    assert_eq!(parsed[0].holder, USER_DN);
    assert_eq!(parsed[0].uri.as_deref(), Some("voms.example.org:15003"));
}

/// The acseq extension's value in a proxy certificate.
fn acseq_value(certificate_der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, certificate) =
        x509_parser::certificate::X509Certificate::from_der(certificate_der).unwrap();
    certificate
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == voms::ACSEQ_OID)
        .expect("the proxy has the acseq extension")
        .value
        .to_vec()
}

/// The AC elements inside an acseq value: `SEQUENCE { SEQUENCE { AC... } }`.
fn attribute_certificates(acseq: &[u8]) -> Vec<u8> {
    use x509_parser::asn1_rs::{Any, FromDer};
    let (_, outer) = Any::from_der(acseq).unwrap();
    let (_, list) = Any::from_der(outer.data).unwrap();
    list.data.to_vec()
}

fn der_sequence(content: &[u8]) -> Vec<u8> {
    let length = u32::try_from(content.len()).unwrap().to_be_bytes();
    let mut out = vec![0x30, 0x84];
    out.extend_from_slice(&length);
    out.extend_from_slice(content);
    out
}

#[test]
fn acs_of_several_vos_read_in_order() {
    // voms-proxy-fake signs for one VO per run (its -voinfo file for several crashes in Debian's
    // 2.1.0~rc3), so two real ACs are put into one acseq value here.
    let setup = Setup::new(&["testvo", "othervo"]);
    let first = setup.fake_proxy("x509up_a", "testvo", &FQANS, 15000, &["-newformat"]);
    let second = setup.fake_proxy(
        "x509up_b",
        "othervo",
        &["/othervo/Role=pilot/Capability=NULL"],
        15001,
        &["-newformat"],
    );
    let now = OffsetDateTime::now_utc();
    let mut content = attribute_certificates(&acseq_value(&proxy_certificate(&first)));
    content.extend(attribute_certificates(&acseq_value(&proxy_certificate(
        &second,
    ))));
    let combined = der_sequence(&der_sequence(&content));

    let parsed = voms::parse_acseq(&combined, now).unwrap();
    let alone: Vec<VomsAttributes> = [&first, &second]
        .iter()
        .flat_map(|proxy| voms::from_certificate(&proxy_certificate(proxy), now).unwrap())
        .collect();
    assert_eq!(parsed, alone);
    let summary: Vec<_> = parsed
        .iter()
        .map(|ac| (ac.vo.as_str(), ac.fqans.len(), ac.uri.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("testvo", 2, Some("voms.example.org:15000")),
            ("othervo", 1, Some("voms.example.org:15001")),
        ]
    );
    assert_matches_voms_proxy_info(&parsed[1], &setup.voms_proxy_info(&second)[0]);
}

#[test]
fn damaged_real_acs_are_errors_not_panics() {
    let setup = Setup::new(&["testvo"]);
    let proxy = setup.fake_proxy("x509up_damaged", "testvo", &FQANS, 15000, &["-newformat"]);
    let value = acseq_value(&proxy_certificate(&proxy));
    let now = OffsetDateTime::now_utc();
    assert!(voms::parse_acseq(&value, now).is_ok());
    for end in 0..value.len() {
        assert!(
            voms::parse_acseq(&value[..end], now).is_err(),
            "a prefix of {end} of {} bytes parsed",
            value.len()
        );
    }
    // Every single-byte change: any result but a panic.
    for index in 0..value.len() {
        for byte in [0x00, 0x01, 0x30, 0x7f, 0x80, 0x84, 0xa0, 0xff] {
            let mut changed = value.clone();
            changed[index] = byte;
            let _ = voms::parse_acseq(&changed, now);
        }
    }
}

#[test]
fn a_proxy_without_vomses_has_no_attributes() {
    let setup = Setup::new(&[]);
    // Without -voms, voms-proxy-fake makes a plain RFC proxy.
    let out = setup.dir.path().join("x509up_plain");
    let status = Command::new("voms-proxy-fake")
        .args(["-rfc", "-q", "-cert"])
        .arg(&setup.user_certificate)
        .arg("-key")
        .arg(&setup.user_key)
        .arg("-certdir")
        .arg(&setup.certificates)
        .arg("-out")
        .arg(&out)
        .env("RANDFILE", setup.dir.path().join("rnd"))
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let parsed =
        voms::from_certificate(&proxy_certificate(&out), OffsetDateTime::now_utc()).unwrap();
    assert_eq!(parsed, []);
}
