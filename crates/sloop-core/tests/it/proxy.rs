//! Proxies made by Sloop and by ARC's `arcproxy` (Debian's nordugrid-arc-client), checked by the
//! real tools (`openssl verify -allow_proxy_certs`, `arcproxy -I`) and read back; every bad
//! input refused by name, without key material in any message.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sloop_core::proxy::{self, MakeRequest, ProxyError, ProxyKind, ProxyPolicy, UserCredentials};
use time::OffsetDateTime;

use crate::support::{GridUser, mode_of, set_mode};

fn request(user: &GridUser, output: &Path) -> MakeRequest {
    MakeRequest::new(
        &UserCredentials {
            certificate: user.certificate.clone(),
            key: user.key.clone(),
        },
        output.to_path_buf(),
    )
}

fn require(tool: &str) {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success(),
        "{tool} is missing; scripts/install-deps.sh installs it"
    );
}

/// `arcproxy -I` on `path`, as `key: value` lines.
fn arcproxy_info(path: &Path, anchors: &Path) -> String {
    require("arcproxy");
    let output = Command::new("arcproxy")
        .args(["-I", "-P"])
        .arg(path)
        .env("X509_CERT_DIR", anchors)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "arcproxy -I failed: {text}");
    text
}

fn openssl_verify(user: &GridUser, proxy: &Path) -> String {
    verify_second_level(user, proxy, &user.certificate)
}

#[test]
fn made_proxy_passes_openssl_and_arcproxy_and_reads_back() {
    let user = GridUser::new();
    let output = user.path("x509up_u1000");
    let now = OffsetDateTime::now_utc();
    let mut req = request(&user, &output);
    req.lifetime = Duration::from_secs(3 * 3600);
    let made = proxy::make(&req, Some(GridUser::PASSPHRASE), &user.anchors, now).unwrap();
    assert_eq!(mode_of(&output), 0o600);

    // The standard layout: proxy certificate, its key, the user's certificate.
    let text = std::fs::read_to_string(&output).unwrap();
    let labels: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("-----BEGIN "))
        .collect();
    assert_eq!(
        labels,
        [
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE-----"
        ]
    );

    let verified = openssl_verify(&user, &output);
    assert!(verified.trim_end().ends_with(": OK"), "{verified}");

    let info = arcproxy_info(&output, &user.anchors);
    assert!(
        info.contains(&format!("Identity: {}", GridUser::DN)),
        "{info}"
    );
    assert!(
        info.contains(
            "Proxy type: X.509 Proxy Certificate Profile RFC compliant impersonation proxy"
        ),
        "{info}"
    );
    assert!(info.contains("Proxy key length: 2048"), "{info}");
    assert!(
        info.contains("Time left for proxy: 2 hours 59 minutes"),
        "{info}"
    );

    let read = proxy::inspect(&output, &user.anchors, now)
        .unwrap()
        .unwrap();
    assert_eq!(read, made, "what make reports is what the file says");
    assert_eq!(read.kind, ProxyKind::Rfc3820);
    assert_eq!(read.policy, ProxyPolicy::Impersonation);
    assert_eq!(read.identity, GridUser::DN);
    assert_eq!(read.issuer, GridUser::DN);
    assert!(read.subject.starts_with(&format!("{}/CN=", GridUser::DN)));
    assert_eq!((read.key_algorithm.as_str(), read.key_bits), ("RSA", 2048));
    assert_eq!(read.signature_algorithm, "sha256WithRSAEncryption");
    assert_eq!(read.chain_length, 2);
    assert!(read.chain.verified, "{:?}", read.chain);
    assert!((3 * 3600 - 5..=3 * 3600).contains(&read.seconds_left));
    assert!(read.voms.is_empty());
}

/// Globus's limited policy (`grid-proxy-init -limited`). ARC does not name that policy language
/// and calls such a proxy "restricted"; both tools accept it as an RFC 3820 proxy.
#[test]
fn limited_proxy_is_an_rfc_proxy_for_arcproxy_too() {
    let user = GridUser::new();
    let output = user.path("limited");
    let mut req = request(&user, &output);
    req.limited = true;
    let now = OffsetDateTime::now_utc();
    let made = proxy::make(&req, Some(GridUser::PASSPHRASE), &user.anchors, now).unwrap();
    assert_eq!(made.policy, ProxyPolicy::Limited);
    let info = arcproxy_info(&output, &user.anchors);
    assert!(
        info.contains("Proxy type: X.509 Proxy Certificate Profile RFC compliant restricted proxy"),
        "{info}"
    );
    let read = proxy::inspect(&output, &user.anchors, now)
        .unwrap()
        .unwrap();
    assert_eq!(read, made);
    let verified = openssl_verify(&user, &output);
    assert!(verified.trim_end().ends_with(": OK"), "{verified}");
}

#[test]
fn reads_a_proxy_made_by_arcproxy() {
    require("arcproxy");
    let user = GridUser::new();
    let output = user.path("arc");
    let mut child = Command::new("arcproxy")
        .arg("-C")
        .arg(&user.certificate)
        .arg("-K")
        .arg(&user.key)
        .arg("-P")
        .arg(&output)
        .arg("-T")
        .arg(&user.anchors)
        .args(["-S", "", "-c", "validityPeriod=2h", "-p", "key=stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{}\n", GridUser::PASSPHRASE).as_bytes(),
    )
    .unwrap();
    assert!(child.wait().unwrap().success(), "arcproxy made no proxy");

    let read = proxy::inspect(&output, &user.anchors, OffsetDateTime::now_utc())
        .unwrap()
        .unwrap();
    assert_eq!(read.kind, ProxyKind::Rfc3820);
    assert_eq!(read.policy, ProxyPolicy::Impersonation);
    assert_eq!(read.identity, GridUser::DN);
    assert!(read.chain.verified, "{:?}", read.chain);
    assert!((2 * 3600 - 60..=2 * 3600).contains(&read.seconds_left));
    assert_eq!(read.key_bits, 2048);
}

#[test]
fn an_expired_proxy_is_read_and_says_so() {
    let user = GridUser::new();
    let output = user.path("old");
    let now = OffsetDateTime::now_utc();
    let mut req = request(&user, &output);
    req.lifetime = Duration::from_secs(60);
    proxy::make(&req, Some(GridUser::PASSPHRASE), &user.anchors, now).unwrap();
    let later = now + time::Duration::hours(1);
    let read = proxy::inspect(&output, &user.anchors, later)
        .unwrap()
        .unwrap();
    assert!(read.seconds_left < -3000, "{}", read.seconds_left);
    assert!(!read.is_valid_at(later));
    assert!(!read.chain.verified);
    assert!(
        read.chain
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("expired"),
        "{:?}",
        read.chain
    );
}

#[test]
fn a_missing_proxy_is_none_and_anchors_are_named() {
    let user = GridUser::new();
    let now = OffsetDateTime::now_utc();
    assert!(
        proxy::inspect(&user.path("none"), &user.anchors, now)
            .unwrap()
            .is_none()
    );
    let output = user.path("p");
    proxy::make(
        &request(&user, &output),
        Some(GridUser::PASSPHRASE),
        &user.anchors,
        now,
    )
    .unwrap();
    let elsewhere = proxy::inspect(&output, &user.path("no-anchors"), now)
        .unwrap()
        .unwrap();
    assert!(!elsewhere.chain.verified);
    assert!(
        elsewhere
            .chain
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("no trust anchors")
    );
}

/// Every way the user's credentials can be wrong, each refused by name, and nothing written.
#[test]
fn bad_credentials_are_refused_by_name() {
    let user = GridUser::new();
    let output = user.path("never");
    let now = OffsetDateTime::now_utc();
    let make = |req: &MakeRequest, passphrase: Option<&str>| {
        proxy::make(req, passphrase, &user.anchors, now).unwrap_err()
    };
    assert!(proxy::needs_passphrase(&user.key).unwrap());
    let req = request(&user, &output);
    let mut messages = Vec::new();

    let e = make(&req, None);
    assert!(matches!(e, ProxyError::PassphraseNeeded { .. }), "{e}");
    messages.push(e.to_string());

    let e = make(&req, Some("wrong"));
    assert!(matches!(e, ProxyError::WrongPassphrase { .. }), "{e}");
    messages.push(e.to_string());

    set_mode(&user.key, 0o644);
    let e = make(&req, Some(GridUser::PASSPHRASE));
    assert!(matches!(e, ProxyError::KeyPermissions { .. }), "{e}");
    assert!(e.to_string().contains("chmod 400"), "{e}");
    set_mode(&user.key, 0o400);

    // Somebody else's key.
    let other = GridUser::new();
    let mut mixed = req.clone();
    mixed.key = other.key.clone();
    let e = make(&mixed, Some(GridUser::PASSPHRASE));
    assert!(matches!(e, ProxyError::KeyMismatch { .. }), "{e}");

    let mut missing = req.clone();
    missing.certificate = user.path("nothing.pem");
    let e = make(&missing, Some(GridUser::PASSPHRASE));
    assert!(matches!(e, ProxyError::UserCertificate { .. }), "{e}");
    assert!(e.to_string().contains("X509_USER_CERT"), "{e}");

    let garbage = user.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let mut bad = req.clone();
    bad.certificate = garbage;
    let e = make(&bad, Some(GridUser::PASSPHRASE));
    assert!(matches!(e, ProxyError::UserCertificate { .. }), "{e}");

    let expired = GridUser::new_valid(-10 * 86_400, -86_400);
    let e = proxy::make(
        &request(&expired, &output),
        Some(GridUser::PASSPHRASE),
        &expired.anchors,
        now,
    )
    .unwrap_err();
    assert!(
        matches!(e, ProxyError::UserCertificateInvalid { .. }),
        "{e}"
    );

    assert!(!output.exists(), "nothing written");
    for message in &messages {
        assert!(!message.contains(GridUser::PASSPHRASE));
        assert!(!message.contains("PRIVATE KEY"));
        assert_eq!(message.lines().count(), 1);
    }
}

/// Damaged proxy files: each one is an error naming what is wrong, never a panic.
#[test]
fn damaged_proxies_are_reported_clearly() {
    let user = GridUser::new();
    let now = OffsetDateTime::now_utc();
    let good = user.path("good");
    proxy::make(
        &request(&user, &good),
        Some(GridUser::PASSPHRASE),
        &user.anchors,
        now,
    )
    .unwrap();
    let text = std::fs::read_to_string(&good).unwrap();
    let inspect = |name: &str, content: &str| {
        let path = user.path(name);
        std::fs::write(&path, content).unwrap();
        set_mode(&path, 0o600);
        proxy::inspect(&path, &user.anchors, now).unwrap_err()
    };

    // Cut at every line: never a panic; an error, or (cut after the key) a proxy without chain.
    let lines: Vec<&str> = text.lines().collect();
    let cut_path = user.path("cut");
    for cut in 1..lines.len() {
        std::fs::write(&cut_path, lines[..cut].join("\n")).unwrap();
        match proxy::inspect(&cut_path, &user.anchors, now) {
            Ok(read) => assert_eq!(read.unwrap().chain_length, 1, "cut at line {cut}"),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    !message.contains("PRIVATE KEY-----") && !message.contains("MII"),
                    "no PEM in messages: {message}"
                );
            }
        }
    }
    let e = inspect("truncated", &text[..text.len() / 2]);
    assert!(e.to_string().contains("truncated"), "{e}");

    let e = inspect("garbage", "hello");
    assert!(matches!(e, ProxyError::Malformed { .. }), "{e}");

    // Only the certificate: no key.
    let certificate_only = &text[..text.find("-----BEGIN RSA").unwrap()];
    let e = inspect("no-key", certificate_only);
    assert!(matches!(e, ProxyError::NoKey { .. }), "{e}");

    // The proxy certificate with another key.
    let other_key = String::from_utf8(user.user.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let e = inspect("wrong-key", &format!("{certificate_only}{other_key}"));
    assert!(matches!(e, ProxyError::WrongKey { .. }), "{e}");

    // The user's own certificate and key: not a proxy.
    let eec = format!(
        "{}{}",
        String::from_utf8(user.user.certificate.to_pem().unwrap()).unwrap(),
        other_key
    );
    let e = inspect("eec", &eec);
    assert!(matches!(e, ProxyError::NotAProxy { .. }), "{e}");
    assert!(e.to_string().contains(GridUser::DN), "{e}");
}

/// `--voms` with a VO the host knows no VOMS server for: the tool's own reason comes back, and
/// the user's current proxy is left exactly as it was, with no stray file beside it.
#[tokio::test]
async fn a_failing_voms_tool_leaves_the_proxy_alone() {
    require("voms-proxy-init");
    let user = GridUser::new();
    let output = user.path("x509up");
    let now = OffsetDateTime::now_utc();
    proxy::make(
        &request(&user, &output),
        Some(GridUser::PASSPHRASE),
        &user.anchors,
        now,
    )
    .unwrap();
    let before = std::fs::read(&output).unwrap();
    let entries = || {
        let mut names: Vec<_> = std::fs::read_dir(user.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let listed = entries();
    // No vomses file anywhere the tool looks: it cannot know the VO's server.
    let e = proxy::make_with_voms(
        proxy::VomsTool::VomsProxyInit,
        &request(&user, &output),
        "novo.example.invalid",
        Some(GridUser::PASSPHRASE),
        &user.anchors,
    )
    .await
    .unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, ProxyError::Tool { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "voms-proxy-init could not make a VOMS proxy: VOMS Server for novo.example.invalid not known!"
    );
    assert!(!e.to_string().contains(GridUser::PASSPHRASE));
    assert_eq!(
        std::fs::read(&output).unwrap(),
        before,
        "the proxy is untouched"
    );
    assert_eq!(entries(), listed, "no file left beside it");
}

/// `openssl verify -allow_proxy_certs` of the first certificate of `file`, with the certificates
/// of `chain` (a certificate or a proxy file) as untrusted intermediates.
fn verify_second_level(user: &GridUser, file: &Path, chain: &Path) -> String {
    let output = Command::new("openssl")
        .args(["verify", "-allow_proxy_certs", "-CApath"])
        .arg(&user.anchors)
        .arg("-untrusted")
        .arg(chain)
        .arg(file)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_site_delegation_request_and_a_job_proxy_are_signed_by_the_users_proxy() {
    let user = GridUser::new();
    let dir = tempfile::tempdir().unwrap();
    let proxy_path = dir.path().join("x509up");
    let now = OffsetDateTime::now_utc();
    proxy::make(
        &request(&user, &proxy_path),
        Some(GridUser::PASSPHRASE),
        &user.anchors,
        now,
    )
    .unwrap();

    // A delegation request as a CE makes it (its own key, which never leaves it).
    let csr = dir.path().join("req.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=delegation",
        ])
        .arg("-keyout")
        .arg(dir.path().join("site.key"))
        .arg("-out")
        .arg(&csr)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let pem = proxy::make::delegate(&proxy_path, &std::fs::read(&csr).unwrap(), now).unwrap();
    assert!(!pem.contains("PRIVATE KEY"), "a delegation carries no key");
    let delegated = dir.path().join("delegated.pem");
    std::fs::write(&delegated, &pem).unwrap();
    let verdict = verify_second_level(&user, &delegated, &proxy_path);
    assert!(verdict.contains(": OK"), "{verdict}");

    // A request that is not signed by its own key is refused.
    let mut text = std::fs::read_to_string(&csr).unwrap();
    let body: Vec<&str> = text.lines().collect();
    let middle = body.len() / 2;
    let flipped = body[middle].replacen(|c: char| c.is_ascii_alphabetic(), "A", 1);
    let flipped = if flipped == body[middle] {
        body[middle].replacen('A', "B", 1)
    } else {
        flipped
    };
    text = text.replacen(body[middle], &flipped, 1);
    assert!(proxy::make::delegate(&proxy_path, text.as_bytes(), now).is_err());

    // The proxy handed to a running job: certificate, a fresh key, the chain; arcproxy reads it.
    let job = proxy::make::for_job(&proxy_path, now).unwrap();
    let job_path = dir.path().join("job-proxy.pem");
    std::fs::write(&job_path, &*job).unwrap();
    set_mode(&job_path, 0o600);
    let verdict = verify_second_level(&user, &job_path, &proxy_path);
    assert!(verdict.contains(": OK"), "{verdict}");
    let info = arcproxy_info(&job_path, &user.anchors);
    assert!(info.contains("Identity: "), "{info}");
    let own_key = std::fs::read_to_string(&proxy_path).unwrap();
    let job_text = String::from_utf8(job.to_vec()).unwrap();
    let key_of = |t: &str| {
        t.split("-----BEGIN RSA PRIVATE KEY-----")
            .nth(1)
            .map(|k| k.split("-----END").next().unwrap().to_string())
    };
    assert!(key_of(&job_text).is_some());
    assert_ne!(
        key_of(&job_text),
        key_of(&own_key),
        "the job's key is its own"
    );

    // An expired proxy signs nothing.
    let later = now + time::Duration::days(30);
    assert!(matches!(
        proxy::make::for_job(&proxy_path, later),
        Err(ProxyError::Expired { .. })
    ));
    assert!(matches!(
        proxy::make::delegate(&proxy_path, &std::fs::read(&csr).unwrap(), later),
        Err(ProxyError::Expired { .. })
    ));
}
