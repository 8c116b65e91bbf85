//! Catalogs and image pulls against a real HTTPS server on loopback, with a test CA, endorsers
//! and CRLs made by the test itself: every check vmcatcher makes, every way a list or a download
//! can be bad, and that nothing unverified ever reaches the store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use sha2::{Digest, Sha512};
use sloop_core::catalog::trust::TrustError;
use sloop_core::catalog::{self, AddRequest, CatalogError, CatalogState};
use sloop_core::config::Config;
use sloop_core::host::CheckStatus;
use sloop_core::image::{self, ImageError, LocalState, pull::PullError};
use sloop_core::paths::Paths;
use sloop_core::pki::{self, CertificateSpec, Identity};
use sloop_core::progress::Reporter;
use time::{Duration, OffsetDateTime};
use tokio_util::sync::CancellationToken;

use crate::https::{Behaviour, HttpsServer};

const CA_DN: &str = "/DC=org/DC=example/O=Test Grid/CN=Test Grid CA";
const ENDORSER_DN: &str = "/DC=org/DC=example/O=Test Grid/CN=Test Endorser";
const LIST_ID: &str = "0a1b2c3d-0000-4000-8000-00000000c0de";
const IMAGE_ID: &str = "11111111-2222-4333-8444-555555555555";

/// A grid in a box: a CA in an IGTF-style anchors folder, an endorser it issued, an HTTPS
/// server whose certificate the same CA issued, and a Sloop home.
struct Grid {
    dir: tempfile::TempDir,
    anchors: PathBuf,
    ca: Identity,
    endorser: Identity,
    server: HttpsServer,
    paths: Paths,
    config: Config,
    now: OffsetDateTime,
}

fn certificate(
    subject: &str,
    issuer: Option<&Identity>,
    from: i64,
    until: i64,
    ca: bool,
) -> Identity {
    pki::issue(
        &CertificateSpec {
            subject,
            not_before: from,
            not_after: until,
            ca,
            server_names: &[],
        },
        issuer,
    )
    .unwrap()
}

impl Grid {
    /// A core over this grid's files and settings, as the front ends hold one.
    fn core(&self) -> sloop_core::Core {
        sloop_core::Core::with_config(self.paths.clone(), Ok(self.config.clone()))
    }

    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let t = now.unix_timestamp();
        let ca = certificate(CA_DN, None, t - 86_400, t + 10 * 86_400, true);
        let endorser = certificate(ENDORSER_DN, Some(&ca), t - 3600, t + 5 * 86_400, false);
        let tls = pki::issue(
            &CertificateSpec {
                subject: "/DC=org/DC=example/CN=127.0.0.1",
                not_before: t - 3600,
                not_after: t + 86_400,
                ca: false,
                server_names: &["IP:127.0.0.1", "DNS:localhost"],
            },
            Some(&ca),
        )
        .unwrap();
        let anchors = dir.path().join("certificates");
        std::fs::create_dir_all(&anchors).unwrap();
        pki::install_anchor(&anchors, &ca.certificate).unwrap();
        let server = HttpsServer::start(
            &tls.certificate.to_pem().unwrap(),
            &tls.key.private_key_to_pem_pkcs8().unwrap(),
        )
        .await;
        let paths = Paths::under(dir.path().join("home")).unwrap();
        let config = Config {
            ca_dir: Some(anchors.clone()),
            ..Config::default()
        };
        Self {
            dir,
            anchors,
            ca,
            endorser,
            server,
            paths,
            config,
            now,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// A hepixvmitrust-shaped list with one image.
    fn list(&self, image: &[u8], image_path: &str) -> serde_json::Value {
        serde_json::json!({ "hv:imagelist": {
            "dc:date:created": rfc3339(self.now - Duration::hours(1)),
            "dc:date:expires": rfc3339(self.now + Duration::days(28)),
            "dc:description": "test list",
            "dc:identifier": LIST_ID,
            "dc:source": "example.org",
            "dc:title": "Test Grid images",
            "hv:endorser": { "hv:x509": {
                "dc:creator": "Test Endorser",
                "hv:ca": CA_DN,
                "hv:dn": ENDORSER_DN,
                "hv:email": "endorser@example.org"
            } },
            "hv:images": [ { "hv:image": {
                "dc:description": "analysis image",
                "dc:identifier": IMAGE_ID,
                "dc:title": "Analysis VM",
                "hv:hypervisor": "QEMU,KVM",
                // AppDB writes numbers as strings.
                "hv:size": image.len().to_string(),
                "hv:uri": self.url(image_path),
                "hv:version": "4.2",
                "sl:arch": "x86_64",
                "sl:checksum:sha512": sha512(image),
                "sl:comments": "",
                "sl:os": "Linux",
                "sl:osversion": "AlmaLinux 9"
            } } ],
            "hv:uri": self.url("/list"),
            "hv:version": "7"
        } })
    }

    fn sign(&self, list: &serde_json::Value, by: &Identity) -> Vec<u8> {
        pki::sign_smime(serde_json::to_string_pretty(list).unwrap().as_bytes(), by).unwrap()
    }

    /// Publishes `signed` at /list and subscribes to it.
    async fn add(&self, signed: Vec<u8>) -> Result<catalog::CatalogView, CatalogError> {
        self.server
            .route("/list", Behaviour::Serve(Arc::new(signed)));
        self.add_url("/list").await
    }

    async fn add_url(&self, path: &str) -> Result<catalog::CatalogView, CatalogError> {
        let request = AddRequest {
            source: self.url(path),
            ..AddRequest::default()
        };
        catalog::add(&self.paths, &self.config, &request, self.now).await
    }

    async fn pull(&self, cancel: &CancellationToken) -> Result<image::ImageView, ImageError> {
        image::pull(
            &self.paths,
            &self.config,
            IMAGE_ID,
            &Reporter::silent(),
            cancel,
            self.now,
        )
        .await
    }

    /// A pull of the image is refused for bytes other than the list's, and stores nothing.
    async fn pull_refused_as_other_bytes(&self) {
        let result = self.pull(&CancellationToken::new()).await;
        assert!(
            matches!(
                result,
                Err(ImageError::Pull(PullError::HashMismatch { .. }))
            ),
            "{result:?}"
        );
        assert!(self.store_files().is_empty());
    }

    fn store_files(&self) -> Vec<String> {
        let dir = self.paths.images_dir().join("store");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Revokes `who` with the real `openssl ca` and installs the CRL as `<hash>.r0`.
    fn revoke(&self, who: &Identity, next_update: Option<&str>) {
        // Issued an hour before the test's clock, which stands still while the test runs.
        let asn1 = |t: OffsetDateTime| {
            t.format(time::macros::format_description!(
                "[year][month][day][hour][minute][second]Z"
            ))
            .unwrap()
        };
        let (last, next) = match next_update {
            Some(next) => ("20200101000000Z".to_string(), next.to_string()),
            None => (
                asn1(self.now - Duration::hours(1)),
                asn1(self.now + Duration::days(7)),
            ),
        };
        sloop_testkit::revoke(
            &self.ca,
            &who.certificate,
            &self.anchors,
            &self.dir.path().join("ca-work"),
            &last,
            &next,
        );
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    sloop_core::time_util::rfc3339(t)
}

fn sha512(bytes: &[u8]) -> String {
    hex::encode(Sha512::digest(bytes))
}

/// Bytes that stand for an image: deterministic, not compressible to nothing.
fn image_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn refused(result: Result<catalog::CatalogView, CatalogError>) -> String {
    match result {
        Err(e @ CatalogError::Refused { .. }) => sloop_core::error_chain(&e),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn catalog_https_list_verifies_and_image_pulls_into_the_store() {
    let grid = Grid::new().await;
    let body = image_bytes(3 * 1024 * 1024 + 17);
    grid.server
        .route("/img", Behaviour::Serve(Arc::new(body.clone())));
    let signed = grid.sign(&grid.list(&body, "/img"), &grid.endorser);
    let view = grid.add(signed).await.unwrap();
    assert_eq!(view.name, "test-grid-images");
    assert_eq!(view.state, CatalogState::Verified);
    assert_eq!(view.endorser.dn, ENDORSER_DN);
    assert_eq!(view.endorser.ca, CA_DN);
    assert_eq!(view.images.len(), 1);
    assert!(view.images[0].certified);
    assert_eq!(
        view.images[0].size,
        body.len() as u64,
        "AppDB's string size is read"
    );

    // The same list twice is refused by name.
    assert!(matches!(
        grid.add_url("/list").await,
        Err(CatalogError::AlreadySubscribed { .. })
    ));

    let progress = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = progress.clone();
    let reporter = Reporter::new(move |p| seen.lock().unwrap().push(p.done));
    let pulled = image::pull(
        &grid.paths,
        &grid.config,
        "11111111",
        &reporter,
        &CancellationToken::new(),
        grid.now,
    )
    .await
    .unwrap();
    let LocalState::Stored { path } = &pulled.local else {
        panic!("not stored: {pulled:?}");
    };
    assert_eq!(std::fs::read(path).unwrap(), body);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o444, "store files are read-only");
    // The download's last report is its whole length (checking the runnable base follows).
    assert!(
        progress.lock().unwrap().contains(&(body.len() as u64)),
        "{:?}",
        progress.lock().unwrap()
    );
    let provenance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{path}.json")).unwrap()).unwrap();
    assert_eq!(provenance["endorserDn"], ENDORSER_DN);
    assert_eq!(provenance["listIdentifier"], LIST_ID);
    assert!(
        !grid
            .paths
            .images_dir()
            .join("partial")
            .join(format!("{}.part", sha512(&body)))
            .exists()
    );

    // A second pull uses the store and downloads nothing.
    let hits = grid.server.hits("/img");
    grid.pull(&CancellationToken::new()).await.unwrap();
    assert_eq!(grid.server.hits("/img"), hits);

    let images = image::list(&grid.paths, &grid.config, grid.now).unwrap();
    assert!(matches!(images[0].local, LocalState::Stored { .. }));
    grid.core().remove_image(IMAGE_ID).await.unwrap();
    assert!(grid.store_files().is_empty());
}

/// A CA's IGTF namespace (`<hash>.namespaces`, else `<hash>.signing_policy`) bounds whom it may
/// certify: an endorser outside it is refused, as grid middleware refuses it.
#[tokio::test]
async fn an_endorser_outside_its_cas_namespace_is_refused() {
    let grid = Grid::new().await;
    let good = grid.list(&image_bytes(1000), "/img");
    let signed = grid.sign(&good, &grid.endorser);
    let hash = format!("{:08x}", grid.ca.certificate.subject_name_hash());
    let namespaces = grid.anchors.join(format!("{hash}.namespaces"));
    let signing_policy = grid.anchors.join(format!("{hash}.signing_policy"));

    // The CA may certify only another organisation's subjects: refused, naming the file.
    std::fs::write(
        &namespaces,
        format!("#NAMESPACES-VERSION: 1.0\nTO Issuer \"{CA_DN}\" \\\n  PERMIT Subject \"/DC=org/DC=partner/.*\"\n"),
    )
    .unwrap();
    let message = refused(grid.add(signed.clone()).await);
    assert!(
        message.contains(&format!(
            "{ENDORSER_DN} is outside the namespace of its CA {CA_DN}"
        )) && message.contains(&format!("{hash}.namespaces does not permit it")),
        "{message}"
    );

    // A file that cannot be read widens nothing: refused too.
    std::fs::write(&namespaces, "TO Issuer SELF ALLOW Subject \"/.*\"\n").unwrap();
    let message = refused(grid.add(signed.clone()).await);
    assert!(
        message.contains("namespace cannot be read") && message.contains("line 1"),
        "{message}"
    );

    // The older signing_policy, when there is no namespaces file: its globs bound the CA too.
    std::fs::remove_file(&namespaces).unwrap();
    std::fs::write(
        &signing_policy,
        format!("access_id_CA X509 '{CA_DN}'\npos_rights globus CA:sign\ncond_subjects globus '\"/DC=org/DC=partner/*\"'\n"),
    )
    .unwrap();
    assert!(refused(grid.add(signed.clone()).await).contains("signing_policy does not permit it"));

    // Inside the namespace: the list is accepted.
    std::fs::write(
        &namespaces,
        "TO Issuer SELF PERMIT Subject \"/DC=org/DC=example/O=Test Grid/.*\"\n",
    )
    .unwrap();
    let view = grid.add(signed).await.unwrap();
    assert_eq!(view.images.len(), 1);
}

/// With `require_crl` (as site admins set it), a CA without a CRL is refused and a CRL past its
/// next update too; `sloop doctor`'s anchors check says which, and names fetch-crl.
#[tokio::test]
async fn require_crl_refuses_a_ca_without_a_current_crl_and_doctor_names_the_fix() {
    let mut grid = Grid::new().await;
    grid.config.require_crl = Some(true);
    let good = grid.list(&image_bytes(1000), "/img");
    let signed = grid.sign(&good, &grid.endorser);
    // The doctor's anchors check: its status, that its detail says `says`, and its fix.
    let doctor = |status: CheckStatus, says: &str| {
        let check = sloop_core::host::check_trust_anchors(&grid.anchors, true, grid.now);
        assert_eq!(check.status, status, "{check:?}");
        assert!(check.detail.contains(says), "{check:?}");
        check.fix
    };

    let message = refused(grid.add(signed.clone()).await);
    assert!(
        message.contains(&format!("a CA in the chain of {ENDORSER_DN} has no CRL"))
            && message.contains("run fetch-crl, or set require_crl = false"),
        "{message}"
    );
    let fix = doctor(
        CheckStatus::Warning,
        "1 CAs have no CRL, and require_crl is on",
    );
    assert_eq!(fix.as_deref(), Some("sudo fetch-crl"));

    // A current CRL (revoking someone else): accepted, and the check is fine.
    let fmt = time::macros::format_description!("[year][month][day][hour][minute][second]Z");
    let t = grid.now.unix_timestamp();
    let other = certificate(
        "/DC=org/DC=example/O=Test Grid/CN=Gone",
        Some(&grid.ca),
        t - 60,
        t + 86_400,
        false,
    );
    let crl = |last: OffsetDateTime, next: OffsetDateTime| {
        sloop_testkit::revoke(
            &grid.ca,
            &other.certificate,
            &grid.anchors,
            &grid
                .dir
                .path()
                .join(format!("ca-work-{}", next.unix_timestamp())),
            &last.format(fmt).unwrap(),
            &next.format(fmt).unwrap(),
        );
    };
    crl(grid.now - Duration::hours(1), grid.now + Duration::days(7));
    grid.add(signed.clone()).await.unwrap();
    assert_eq!(doctor(CheckStatus::Ok, "1 CA certificates"), None);
    doctor(CheckStatus::Ok, "1 CRLs");

    // The CRL goes past its next update: the list is refused when checked again, and the
    // check names the CRL and fetch-crl.
    crl(grid.now - Duration::days(10), grid.now - Duration::days(1));
    let view = catalog::load(&grid.paths, &grid.config, "test-grid-images", grid.now).unwrap();
    assert_ne!(view.state, CatalogState::Verified, "{view:?}");
    let fix = doctor(CheckStatus::Warning, "1 past their next update");
    assert!(fix.unwrap_or_default().contains("fetch-crl"));
}

#[tokio::test]
async fn catalog_refuses_every_bad_list_with_the_check_that_failed() {
    let grid = Grid::new().await;
    let body = image_bytes(1000);
    let good = grid.list(&body, "/img");
    let t = grid.now.unix_timestamp();

    // Tampered body: one byte of the signed JSON changed.
    let signed = grid.sign(&good, &grid.endorser);
    let text = String::from_utf8(signed).unwrap();
    let tampered = text.replacen("AlmaLinux 9", "AlmaLinux 8", 1);
    assert_ne!(text, tampered);
    assert!(refused(grid.add(tampered.into_bytes()).await).contains("altered after signing"));

    // An endorser from a CA that is not a trust anchor.
    let rogue_ca = certificate(
        "/DC=org/DC=rogue/CN=Rogue CA",
        None,
        t - 60,
        t + 86_400,
        true,
    );
    let rogue = certificate(ENDORSER_DN, Some(&rogue_ca), t - 60, t + 86_400, false);
    let message = refused(grid.add(grid.sign(&good, &rogue)).await);
    assert!(
        message.contains("is not trusted: unable to get local issuer certificate"),
        "{message}"
    );

    // Signer subject, then issuer, not what the list claims.
    let other = certificate(
        "/DC=org/DC=example/O=Test Grid/CN=Someone Else",
        Some(&grid.ca),
        t - 60,
        t + 86_400,
        false,
    );
    let message = refused(grid.add(grid.sign(&good, &other)).await);
    assert!(
        message
            .contains("(hv:dn) but was signed by /DC=org/DC=example/O=Test Grid/CN=Someone Else"),
        "{message}"
    );
    let mut wrong_ca = good.clone();
    wrong_ca["hv:imagelist"]["hv:endorser"]["hv:x509"]["hv:ca"] = "/DC=org/CN=Other CA".into();
    let message = refused(grid.add(grid.sign(&wrong_ca, &grid.endorser)).await);
    assert!(
        message.contains("(hv:ca) but the signer was issued by"),
        "{message}"
    );

    // Expired list; list from the future.
    let mut expired = good.clone();
    expired["hv:imagelist"]["dc:date:expires"] = rfc3339(grid.now - Duration::days(1)).into();
    assert!(
        refused(grid.add(grid.sign(&expired, &grid.endorser)).await)
            .contains("the list expired on")
    );
    let mut future = good.clone();
    future["hv:imagelist"]["dc:date:created"] = rfc3339(grid.now + Duration::days(1)).into();
    assert!(
        refused(grid.add(grid.sign(&future, &grid.endorser)).await)
            .contains("created in the future")
    );

    // Expired and not-yet-valid endorser certificates.
    let old = certificate(ENDORSER_DN, Some(&grid.ca), t - 7200, t - 3600, false);
    assert!(refused(grid.add(grid.sign(&good, &old)).await).contains(
        "endorser certificate /DC=org/DC=example/O=Test Grid/CN=Test Endorser expired on"
    ));
    let early = certificate(ENDORSER_DN, Some(&grid.ca), t + 3600, t + 7200, false);
    assert!(refused(grid.add(grid.sign(&good, &early)).await).contains("is not valid before"));

    // Unsigned JSON; malformed and truncated S/MIME.
    let unsigned = serde_json::to_vec(&good).unwrap();
    assert!(refused(grid.add(unsigned).await).contains("not S/MIME signed"));
    assert!(
        refused(grid.add(b"MIME-Version: 1.0\r\n\r\nhello".to_vec()).await)
            .contains("cannot be read")
    );
    let whole = grid.sign(&good, &grid.endorser);
    let truncated = whole[..whole.len() * 2 / 3].to_vec();
    assert!(refused(grid.add(truncated).await).contains("cannot be read"));

    // Signed, but not a list: malformed JSON, a missing required key.
    let signed_garbage = pki::sign_smime(b"{\"hv:imagelist\": {", &grid.endorser).unwrap();
    assert!(refused(grid.add(signed_garbage).await).contains("not valid JSON"));
    let mut missing = good.clone();
    missing["hv:imagelist"]
        .as_object_mut()
        .unwrap()
        .remove("dc:date:expires");
    assert!(
        refused(grid.add(grid.sign(&missing, &grid.endorser)).await)
            .contains("lacks the required key \"dc:date:expires\"")
    );

    // A pinned identifier or endorser that the list does not match.
    grid.server.route(
        "/list",
        Behaviour::Serve(Arc::new(grid.sign(&good, &grid.endorser))),
    );
    let pinned = |identifier: Option<&str>, dn: Option<&str>| AddRequest {
        source: grid.url("/list"),
        identifier: identifier.map(str::to_string),
        endorser_dn: dn.map(str::to_string),
        ..AddRequest::default()
    };
    let result = catalog::add(
        &grid.paths,
        &grid.config,
        &pinned(Some("another-id"), None),
        grid.now,
    )
    .await;
    assert!(refused(result).contains("this catalog is for another-id"));
    let result = catalog::add(
        &grid.paths,
        &grid.config,
        &pinned(None, Some("/CN=Trusted Person")),
        grid.now,
    )
    .await;
    assert!(refused(result).contains("this catalog trusts only /CN=Trusted Person"));

    // A list far larger than any real one, a redirect loop, a missing list.
    grid.server
        .route("/huge", Behaviour::Huge(20 * 1024 * 1024));
    assert!(refused(grid.add_url("/huge").await).contains("more than any real image list"));
    grid.server
        .route("/loop", Behaviour::Redirect("/loop".into()));
    let message = grid.add_url("/loop").await.unwrap_err().to_string();
    assert!(
        message.contains("redirects (a redirect loop?)"),
        "{message}"
    );
    assert!(matches!(
        grid.add_url("/nothing").await,
        Err(CatalogError::Gone(_))
    ));

    // Nothing of all that was kept.
    assert!(
        catalog::list(&grid.paths, &grid.config, grid.now)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn catalog_honours_crls_for_the_endorsers_ca() {
    let grid = Grid::new().await;
    let good = grid.list(&image_bytes(10), "/img");
    let signed = grid.sign(&good, &grid.endorser);
    let view = grid.add(signed.clone()).await.unwrap();
    assert_eq!(view.state, CatalogState::Verified);

    // A CRL that does not list the endorser is fine.
    let t = grid.now.unix_timestamp();
    let bystander = certificate(
        "/DC=org/DC=example/CN=Bystander",
        Some(&grid.ca),
        t - 60,
        t + 3600,
        false,
    );
    grid.revoke(&bystander, None);
    let view = catalog::load(&grid.paths, &grid.config, &view.name, grid.now).unwrap();
    assert_eq!(view.state, CatalogState::Verified, "{:?}", view.problem);

    // Revoked since it was added: the stored list no longer certifies anything; nothing deleted.
    grid.revoke(&grid.endorser, None);
    let view = catalog::load(&grid.paths, &grid.config, &view.name, grid.now).unwrap();
    assert_eq!(view.state, CatalogState::Refused);
    assert!(
        view.problem
            .as_deref()
            .unwrap()
            .contains("has been revoked by its CA")
    );
    let images = image::list(&grid.paths, &grid.config, grid.now).unwrap();
    assert!(images.iter().all(|i| !i.certified));
    // A new subscription to the same list is refused for the same reason.
    catalog::remove(&grid.paths, &view.name).unwrap();
    assert!(refused(grid.add(signed.clone()).await).contains("has been revoked"));

    // A CRL that is out of date fails the check too (fetch-crl has not run).
    std::fs::write(grid.dir.path().join("ca-work/index.txt"), "").unwrap();
    grid.revoke(&bystander, Some("20200102000000Z"));
    let message = refused(grid.add(signed).await);
    assert!(message.contains("CRL has expired"), "{message}");
}

#[tokio::test]
async fn catalog_marks_images_uncertified_when_the_list_expires_or_disappears() {
    let grid = Grid::new().await;
    let body = image_bytes(5000);
    grid.server
        .route("/img", Behaviour::Serve(Arc::new(body.clone())));
    let view = grid
        .add(grid.sign(&grid.list(&body, "/img"), &grid.endorser))
        .await
        .unwrap();
    grid.pull(&CancellationToken::new()).await.unwrap();

    // Thirty days on, the list has expired: shown, not certified, nothing deleted, no new pulls.
    let later = grid.now + Duration::days(30);
    let expired = catalog::load(&grid.paths, &grid.config, &view.name, later).unwrap();
    assert_eq!(expired.state, CatalogState::Expired);
    assert!(expired.problem.as_deref().unwrap().contains("expired on"));
    let images = image::list(&grid.paths, &grid.config, later).unwrap();
    assert!(!images[0].certified);
    assert!(
        matches!(images[0].local, LocalState::Stored { .. }),
        "nothing is deleted"
    );
    let again = image::pull(
        &grid.paths,
        &grid.config,
        IMAGE_ID,
        &Reporter::silent(),
        &CancellationToken::new(),
        later,
    )
    .await;
    assert!(
        matches!(again, Err(ImageError::NotCertified { .. })),
        "{again:?}"
    );

    // A refresh that finds a tampered list keeps the stored one, and says why.
    let mut newer = grid.list(&body, "/img");
    newer["hv:imagelist"]["hv:version"] = "8".into();
    let signed = String::from_utf8(grid.sign(&newer, &grid.endorser)).unwrap();
    grid.server.route(
        "/list",
        Behaviour::Serve(Arc::new(
            signed.replacen("test list", "best list", 1).into_bytes(),
        )),
    );
    let result = catalog::refresh(&grid.paths, &grid.config, &view.name, grid.now).await;
    assert!(
        matches!(result, Err(CatalogError::Refused { .. })),
        "{result:?}"
    );
    let kept = catalog::load(&grid.paths, &grid.config, &view.name, grid.now).unwrap();
    assert_eq!(kept.state, CatalogState::Verified);
    assert!(
        kept.problem
            .as_deref()
            .unwrap()
            .contains("altered after signing")
    );

    // The publisher takes the list down: gone, images no longer certified.
    grid.server.route("/list", Behaviour::Status(404));
    let result = catalog::refresh(&grid.paths, &grid.config, &view.name, grid.now).await;
    assert!(matches!(result, Err(CatalogError::Gone(_))), "{result:?}");
    let gone = catalog::load(&grid.paths, &grid.config, &view.name, grid.now).unwrap();
    assert_eq!(gone.state, CatalogState::Gone);
    assert!(
        image::list(&grid.paths, &grid.config, grid.now)
            .unwrap()
            .iter()
            .all(|i| !i.certified)
    );

    // It comes back: a refresh makes it verified again.
    grid.server.route(
        "/list",
        Behaviour::Serve(Arc::new(grid.sign(&newer, &grid.endorser))),
    );
    let back = catalog::refresh(&grid.paths, &grid.config, &view.name, grid.now)
        .await
        .unwrap();
    assert_eq!(back.state, CatalogState::Verified);
}

#[tokio::test]
async fn image_pull_refuses_wrong_bytes_and_leaves_nothing() {
    let grid = Grid::new().await;
    let body = image_bytes(200_000);
    grid.add(grid.sign(&grid.list(&body, "/img"), &grid.endorser))
        .await
        .unwrap();

    // Same size, other bytes.
    let mut other = body.clone();
    other[100_000] ^= 1;
    grid.server.route("/img", Behaviour::Serve(Arc::new(other)));
    grid.pull_refused_as_other_bytes().await;
    assert!(
        !grid
            .paths
            .images_dir()
            .join("partial")
            .join(format!("{}.part", sha512(&body)))
            .exists()
    );

    // Another size.
    grid.server
        .route("/img", Behaviour::Serve(Arc::new(body[..1000].to_vec())));
    let result = grid.pull(&CancellationToken::new()).await;
    assert!(
        matches!(
            result,
            Err(ImageError::Pull(PullError::SizeMismatch {
                expected: 200_000,
                got: 1000,
                ..
            }))
        ),
        "{result:?}"
    );
    assert!(grid.store_files().is_empty());

    // Gone from the server.
    grid.server.route("/img", Behaviour::Status(404));
    let message = grid
        .pull(&CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("404"), "{message}");
    assert!(grid.store_files().is_empty());
}

/// A list fetched over https may name its image by `file://` (a share on the institute's or the
/// venue's server, mounted here): pulled and verified like any other source; wrong bytes and a
/// missing file refused, naming the file; a `file://` URL of another host refused with the fix.
#[tokio::test]
async fn image_pull_reads_file_urls_verified_like_any_other_source() {
    let grid = Grid::new().await;
    let share = grid.dir.path().join("share with space");
    std::fs::create_dir_all(&share).unwrap();
    let body = image_bytes(90_000);
    let file = share.join("analysis.img");
    std::fs::write(&file, &body).unwrap();
    let url = url::Url::from_file_path(&file).unwrap().to_string();
    let mut list = grid.list(&body, "/unused");
    list["hv:imagelist"]["hv:images"][0]["hv:image"]["hv:uri"] = serde_json::json!(url);
    grid.add(grid.sign(&list, &grid.endorser)).await.unwrap();

    // Wrong bytes first (same size): refused, nothing stored.
    let mut other = body.clone();
    other[5] ^= 1;
    std::fs::write(&file, &other).unwrap();
    grid.pull_refused_as_other_bytes().await;
    // Missing: the error names the file.
    std::fs::remove_file(&file).unwrap();
    let message = grid
        .pull(&CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("share%20with%20space/analysis.img"),
        "{message}"
    );
    // The endorsed bytes: stored.
    std::fs::write(&file, &body).unwrap();
    let view = grid.pull(&CancellationToken::new()).await.unwrap();
    let image::LocalState::Stored { path } = &view.local else {
        panic!("not stored: {view:?}");
    };
    assert_eq!(std::fs::read(path).unwrap(), body);
    assert!(
        grid.store_files().contains(&sha512(&body)),
        "{:?}",
        grid.store_files()
    );
}

#[tokio::test]
async fn image_pull_resumes_after_drops_and_survives_a_server_ignoring_range() {
    let grid = Grid::new().await;
    let body = Arc::new(image_bytes(2 * 1024 * 1024));
    grid.add(grid.sign(&grid.list(&body, "/img"), &grid.endorser))
        .await
        .unwrap();

    // The connection drops twice mid-body: the pull resumes with Range and finishes.
    grid.server.route(
        "/img",
        Behaviour::DropAfter {
            body: body.clone(),
            after: 700_000,
            times: 2,
        },
    );
    let pulled = grid.pull(&CancellationToken::new()).await.unwrap();
    assert!(matches!(pulled.local, LocalState::Stored { .. }));
    assert_eq!(
        grid.server.ranges("/img"),
        vec![
            None,
            Some("bytes=700000-".to_string()),
            Some("bytes=1400000-".to_string())
        ]
    );
    // Regression (issue 10, bug 3): a machine manifest that cannot be read might name this
    // base, so the image is kept and the error names the file.
    let broken = grid.paths.machines_dir().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("machine.toml"), "name = [not toml").unwrap();
    let kept = grid.core().remove_image(IMAGE_ID).await.unwrap_err();
    let message = sloop_core::error_chain(&kept);
    assert!(message.contains("so it is kept"), "{message}");
    assert!(
        message.contains(&broken.join("machine.toml").display().to_string()),
        "{message}"
    );
    assert!(matches!(
        image::list(&grid.paths, &grid.config, grid.now).unwrap()[0].local,
        LocalState::Stored { .. }
    ));
    std::fs::remove_dir_all(&broken).unwrap();
    grid.core().remove_image(IMAGE_ID).await.unwrap();

    // It drops every time: the pull gives up, keeping what it has for the next one.
    grid.server.route(
        "/img",
        Behaviour::DropAfter {
            body: body.clone(),
            after: 300_000,
            times: 1000,
        },
    );
    let result = grid.pull(&CancellationToken::new()).await;
    let Err(ImageError::Pull(PullError::Interrupted { kept, .. })) = result else {
        panic!("expected an interruption, got {result:?}");
    };
    assert!(kept >= 300_000, "{kept}");
    assert!(
        grid.store_files().is_empty(),
        "a partial download is never in the store"
    );

    // The next pull finds a server that ignores Range: it starts over cleanly and verifies.
    let before = grid.server.ranges("/img").len();
    grid.server
        .route("/img", Behaviour::IgnoreRange(body.clone()));
    let pulled = grid.pull(&CancellationToken::new()).await.unwrap();
    let LocalState::Stored { path } = pulled.local else {
        panic!()
    };
    assert_eq!(std::fs::read(path).unwrap(), *body);
    let asked = grid.server.ranges("/img")[before].clone();
    assert_eq!(asked, Some(format!("bytes={kept}-")), "it asked to resume");
}

#[tokio::test]
async fn image_pull_can_be_cancelled_and_resumed() {
    let grid = Grid::new().await;
    // Large enough that progress is reported before the end, even on loopback.
    let body = Arc::new(image_bytes(48 * 1024 * 1024));
    grid.server.route("/img", Behaviour::Serve(body.clone()));
    grid.add(grid.sign(&grid.list(&body, "/img"), &grid.endorser))
        .await
        .unwrap();

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let reporter = Reporter::new(move |p| {
        if p.done > 0 {
            trigger.cancel();
        }
    });
    let result = image::pull(
        &grid.paths,
        &grid.config,
        IMAGE_ID,
        &reporter,
        &cancel,
        grid.now,
    )
    .await;
    assert!(
        matches!(result, Err(ImageError::Pull(PullError::Cancelled { .. }))),
        "{result:?}"
    );
    let images = image::list(&grid.paths, &grid.config, grid.now).unwrap();
    let LocalState::Partial { bytes } = images[0].local else {
        panic!("expected a partial download: {:?}", images[0].local);
    };
    assert!(bytes > 0 && bytes < body.len() as u64);

    grid.pull(&CancellationToken::new()).await.unwrap();
    let ranges = grid.server.ranges("/img");
    assert_eq!(
        ranges.last().unwrap().as_deref(),
        Some(format!("bytes={bytes}-").as_str())
    );
}

#[tokio::test]
async fn catalog_mirror_folder_and_the_demo_work_offline() {
    let grid = Grid::new().await;
    // A list signed with the real `openssl smime -sign`, as hepixvmitrust does, in a mirror
    // folder with the image beside it (a USB stick in a classroom).
    let mirror = grid.dir.path().join("usb");
    std::fs::create_dir_all(&mirror).unwrap();
    let body = image_bytes(70_000);
    std::fs::write(mirror.join("analysis.img"), &body).unwrap();
    let list = grid.list(&body, "/far/away/analysis.img");
    std::fs::write(
        mirror.join("content.json"),
        serde_json::to_string_pretty(&list).unwrap(),
    )
    .unwrap();
    std::fs::write(
        mirror.join("endorser.pem"),
        grid.endorser.certificate.to_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(
        mirror.join("endorser.key"),
        grid.endorser.key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    let out = Command::new("openssl")
        .args([
            "smime",
            "-sign",
            "-in",
            "content.json",
            "-signer",
            "endorser.pem",
            "-inkey",
            "endorser.key",
            "-out",
            "grid.image_list",
        ])
        .current_dir(&mirror)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["content.json", "endorser.pem", "endorser.key"] {
        std::fs::remove_file(mirror.join(f)).unwrap();
    }
    let view = catalog::add(
        &grid.paths,
        &grid.config,
        &AddRequest {
            source: mirror.display().to_string(),
            name: Some("usb".into()),
            ..AddRequest::default()
        },
        grid.now,
    )
    .await
    .unwrap();
    assert_eq!(view.state, CatalogState::Verified);
    assert_eq!(
        Path::new(&view.images[0].location),
        mirror.join("analysis.img")
    );
    let pulled = grid.pull(&CancellationToken::new()).await.unwrap();
    assert!(matches!(pulled.local, LocalState::Stored { .. }));
    assert_eq!(
        grid.server.hits("/far/away/analysis.img"),
        0,
        "read from the mirror, not the URL"
    );

    // The demo: built from a local image, trusted through its own anchors only.
    let demo_image = grid.dir.path().join("tiny.qcow2");
    std::fs::write(&demo_image, image_bytes(123_456)).unwrap();
    let demo = catalog::demo::ensure(&grid.paths, &grid.config, &demo_image, None, grid.now)
        .await
        .unwrap();
    assert_eq!(demo.state, CatalogState::Verified);
    assert_eq!(demo.images[0].sha512, sha512(&image_bytes(123_456)));
    let anchors: Vec<_> = std::fs::read_dir(&grid.anchors)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        anchors.len(),
        1,
        "the demo CA is not added to the grid's trust anchors"
    );
    // Its list does not verify against the grid's anchors: the demo CA is trusted for it alone.
    let signed = std::fs::read(&demo.source).unwrap();
    let refusal =
        catalog::accept(&signed, &grid.anchors, &catalog::Pins::default(), grid.now).unwrap_err();
    assert!(
        matches!(
            refusal,
            catalog::Refusal::Signature(TrustError::Untrusted { .. })
        ),
        "{refusal}"
    );
    // A list read again is answered from the verdict cache while nothing it depends on
    // changed; a changed anchor is seen at once, and so is the next minute.
    let demo_anchors = grid.paths.data_dir.join("demo/ca");
    assert!(demo_anchors.is_dir(), "{}", demo_anchors.display());
    let pins = catalog::Pins::default();
    let verifies = |now| catalog::accept_cached_verifies(&signed, &demo_anchors, &pins, now);
    verifies(grid.now);
    assert!(!verifies(grid.now), "the same list, anchors and minute");
    assert!(verifies(grid.now + time::Duration::minutes(1)));
    let anchor = std::fs::read_dir(&demo_anchors)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let bytes = std::fs::read(&anchor).unwrap();
    std::fs::remove_file(&anchor).unwrap();
    assert!(verifies(grid.now), "an anchor removed");
    let refused = catalog::accept_cached(&signed, &demo_anchors, &pins, grid.now).unwrap_err();
    assert!(
        matches!(
            refused,
            catalog::Refusal::Signature(TrustError::NoAnchors(_))
        ),
        "{refused}"
    );
    std::fs::write(&anchor, bytes).unwrap();
    assert!(
        catalog::accept_cached(&signed, &demo_anchors, &pins, grid.now).is_ok(),
        "the anchor back"
    );
    // Ensuring it again leaves it alone.
    let again = catalog::demo::ensure(&grid.paths, &grid.config, &demo_image, None, grid.now)
        .await
        .unwrap();
    assert_eq!(again.images[0].identifier, demo.images[0].identifier);
    assert_eq!(again.checked, demo.checked);
    let demo_id = demo.images[0].identifier.clone();
    image::pull(
        &grid.paths,
        &grid.config,
        &demo_id,
        &Reporter::silent(),
        &CancellationToken::new(),
        grid.now,
    )
    .await
    .unwrap();

    // Given its ISO variant, the working demo is built again with it: both listed, the ISO as
    // ISO; then it is left alone again.
    let live = grid.dir.path().join("tiny.iso");
    std::fs::write(&live, image_bytes(65_432)).unwrap();
    let both = catalog::demo::ensure(
        &grid.paths,
        &grid.config,
        &demo_image,
        Some(&live),
        grid.now,
    )
    .await
    .unwrap();
    assert_eq!(both.state, CatalogState::Verified);
    assert_eq!(both.images.len(), 2);
    assert_eq!(both.images[0].identifier, demo_id);
    assert_eq!(both.images[1].title, "Sloop tiny live ISO");
    assert_eq!(both.images[1].format.as_deref(), Some("ISO"));
    assert_eq!(both.images[1].sha512, sha512(&image_bytes(65_432)));
    let still = catalog::demo::ensure(
        &grid.paths,
        &grid.config,
        &demo_image,
        Some(&live),
        grid.now,
    )
    .await
    .unwrap();
    assert_eq!(still.checked, both.checked);
}
