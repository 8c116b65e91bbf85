//! A machine's life through the core's API on the Debian image with real cloud-init: create from
//! a certified catalog image, start (waits for the pinned host key), the work directory both
//! ways, a change to the root disk surviving stop and start, delete; the base never changes.
//! The tiny image's same flow runs through the CLI (crates/sloop-cli/tests/machine.rs).

use std::time::{Duration, Instant};

use sloop_core::catalog;
use sloop_core::config::Config;
use sloop_core::image::{self, LocalState};
use sloop_core::machine::manifest::Resources;
use sloop_core::machine::{self, CreateRequest, MachineState};
use sloop_core::paths::Paths;
use sloop_core::progress::Reporter;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::support::{DomainGuard, ONE_VM_AT_A_TIME, TestImage, libvirt, sha512_file, test_image};

async fn run(paths: &Paths, name: &str, command: &str) -> String {
    let manifest = machine::load(paths, &name.parse().unwrap()).unwrap();
    let session = machine::power::connect(paths, &manifest, Duration::from_secs(30))
        .await
        .unwrap();
    let out = session.exec(command).await.unwrap();
    let _ = session.close().await;
    assert_eq!(
        out.status,
        Some(0),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_init_machine_lifecycle_through_the_core() {
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::under(home.path().join("home")).unwrap();
    let config = Config::default();
    let now = OffsetDateTime::now_utc();
    let conn = libvirt().await;
    let name = format!("cloud{}", std::process::id() % 100_000);
    let _guard = DomainGuard {
        uri: conn.uri().to_string(),
        name: format!("sloop-{name}"),
    };
    let work = home.path().join("analysis");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("input.txt"), "data from the host\n").unwrap();

    let base_image = test_image(TestImage::Cloud);
    let demo = catalog::demo::ensure(&paths, &config, &base_image, None, now)
        .await
        .unwrap();
    let identifier = demo.images[0].identifier.clone();
    let pulled = image::pull(
        &paths,
        &config,
        &identifier,
        &Reporter::silent(),
        &CancellationToken::new(),
        now,
    )
    .await
    .unwrap();
    let LocalState::Stored { path: base } = pulled.local else {
        panic!("not stored")
    };
    let base_sha512 = sha512_file(base.as_ref());

    let request = CreateRequest {
        name: name.clone(),
        image: identifier,
        resources: Resources {
            vcpus: 1,
            memory_mib: 1024,
            disk_gib: 4,
        },
        work_dir: Some(work.clone()),
        overlay: None,
        origin: None,
    };
    let created = machine::create(
        &paths,
        &config,
        &conn,
        &request,
        &Reporter::silent(),
        &CancellationToken::new(),
        now,
    )
    .await
    .unwrap();
    assert_eq!(created.state, MachineState::Stopped);
    assert!(created.image_certified);
    let again = machine::create(
        &paths,
        &config,
        &conn,
        &request,
        &Reporter::silent(),
        &CancellationToken::new(),
        now,
    )
    .await;
    assert!(
        matches!(again, Err(machine::MachineError::Exists(_))),
        "{again:?}"
    );

    let started = Instant::now();
    let running = machine::start(
        &paths,
        &config,
        &conn,
        &name,
        Some(Duration::from_secs(400)),
        &Reporter::silent(),
    )
    .await
    .unwrap();
    eprintln!(
        "cloud-init machine: start to SSH {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(running.state, MachineState::Running);

    let out = run(
        &paths,
        &name,
        "cloud-init status --wait >/dev/null; id -un; cat /analysis/input.txt; echo result > /analysis/output.txt; echo kept | sudo tee /var/lib/sloop-kept >/dev/null && sync",
    )
    .await;
    assert_eq!(out, "sloop\ndata from the host\n");
    assert_eq!(
        std::fs::read_to_string(work.join("output.txt")).unwrap(),
        "result\n"
    );

    let stopped = machine::stop(&paths, &config, &conn, &name, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(stopped.state, MachineState::Stopped);
    machine::start(
        &paths,
        &config,
        &conn,
        &name,
        Some(Duration::from_secs(400)),
        &Reporter::silent(),
    )
    .await
    .unwrap();
    assert_eq!(
        run(&paths, &name, "cat /var/lib/sloop-kept").await,
        "kept\n"
    );

    machine::delete(&paths, &conn, &name).await.unwrap();
    assert!(
        machine::list(&paths, &config, &conn)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sha512_file(base.as_ref()),
        base_sha512,
        "the base was never written"
    );
}
