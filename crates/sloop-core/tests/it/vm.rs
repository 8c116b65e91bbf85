//! A real machine from a test image: libvirt domain with a NoCloud seed, boot under TCG, SSH
//! login with the host key Sloop gave it.
//!
//! TCG, not the probe's choice: this test assembles the domain by hand, without the product's
//! fallback, and some hosts run the probe guest under KVM while real guests then stop with "KVM
//! internal error". The product's path (try KVM, fall back to TCG) is exercised by the CLI's
//! machine test and the E2E test.

use std::path::Path;
use std::time::{Duration, Instant};

use sloop_core::host::{self, ShareKind};
use sloop_core::machine::domain::{DomainSpec, Share, choose_network};
use sloop_core::machine::keys::{MachineKeys, public_openssh};
use sloop_core::machine::seed::{self, Seed, WriteFile};
use sloop_core::machine::{MachineState, disk, free_local_port, lifecycle};
use sloop_core::ssh::{self, SshError};
use sloop_core::types::Acceleration;

use crate::support::{DomainGuard, ONE_VM_AT_A_TIME, TestImage, libvirt, sha512_file, test_image};

#[tokio::test(flavor = "multi_thread")]
async fn tiny_image_boots_and_logs_in_with_pinned_host_key() {
    boot_login_shutdown(TestImage::Tiny, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_init_image_boots_and_logs_in_with_pinned_host_key() {
    boot_login_shutdown(TestImage::Cloud, Duration::from_secs(400)).await;
}

async fn boot_login_shutdown(kind: TestImage, boot_budget: Duration) {
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let base = test_image(kind);
    let base_sha512 = sha512_file(&base);
    let conn = libvirt().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("machine");
    let shared = work.path().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("from-host.txt"), "written on the host\n").unwrap();

    host::qemu_binary().expect("qemu-system-x86_64");
    let accel = Acceleration::Tcg;
    let machine = format!("it{}", std::process::id());
    let domain_name = format!("sloop-{machine}");
    let _guard = DomainGuard {
        uri: conn.uri().to_string(),
        name: domain_name.clone(),
    };

    // The pieces Sloop makes for a machine.
    let keys = MachineKeys::generate(&machine).unwrap();
    keys.save(&dir.join("ssh")).unwrap();
    let overlay = dir.join("overlay.qcow2");
    disk::create_overlay(&base, &overlay, 2).await.unwrap();
    let mount = seed::mount_work_dir(ShareKind::NineP, 1000);
    let seed = Seed {
        instance_id: format!("{machine}-1"),
        hostname: machine.clone(),
        user: "sloop".into(),
        uid: 1000,
        authorized_keys: vec![public_openssh(keys.client.public_key())],
        host_key_private: keys.host_private_openssh().unwrap(),
        host_key_public: public_openssh(keys.host.public_key()),
        write_files: vec![WriteFile {
            path: "/etc/sloop/machine".into(),
            owner: "root:root".into(),
            permissions: 0o644,
            content: format!("name={machine}\n").into_bytes(),
        }],
        bootcmd: vec![mount],
        runcmd: vec!["touch /var/lib/sloop-first-boot-done".into()],
    };
    let seed_path = dir.join("seed.iso");
    seed.write_iso(&seed_path).await.unwrap();

    let port = free_local_port().unwrap();
    let version = conn.run(|c| c.lib_version()).await.unwrap();
    let run_as = conn.uri().contains("/system").then(|| {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    });
    let console = dir.join("console.log");
    let uuid = format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), port);
    let xml = DomainSpec {
        name: &domain_name,
        machine: &machine,
        uuid: &uuid,
        acceleration: accel,
        vcpus: 1,
        memory_mib: match kind {
            TestImage::Tiny => 256,
            TestImage::Cloud => 1024,
        },
        overlay: &overlay,
        live_cd: None,
        seed: &seed_path,
        share: Some(Share {
            source: &shared,
            tag: seed::WORK_TAG,
            kind: ShareKind::NineP,
        }),
        network: choose_network(version, port),
        console_log: &console,
        run_as,
    }
    .to_xml();

    lifecycle::define(&conn, xml).await.unwrap();
    let started = Instant::now();
    lifecycle::start(&conn, &domain_name).await.unwrap();
    let endpoint = ssh::SshEndpoint::local(port, "sloop");
    let session = match ssh::connect(
        &endpoint,
        &keys.client,
        keys.host.public_key(),
        ssh::ConnectPolicy::local_vm(boot_budget),
    )
    .await
    {
        Ok(session) => session,
        Err(e) => panic!("{e}\nconsole:\n{}", console_tail(&console)),
    };
    let boot_to_ssh = started.elapsed();
    eprintln!(
        "{kind:?}: start to SSH login in {:.1} s under {accel:?}",
        boot_to_ssh.as_secs_f64()
    );

    let out = session
        .exec("uname -sr; hostname; id -un; cat /etc/sloop/machine; cat /analysis/from-host.txt; echo inside > /analysis/from-guest.txt")
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status,
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("Linux "), "{stdout}");
    assert_eq!(lines[1], machine, "hostname from the seed");
    assert_eq!(lines[2], "sloop", "user from the seed");
    assert_eq!(
        lines[3],
        format!("name={machine}"),
        "write_files from the seed"
    );
    assert_eq!(
        lines[4], "written on the host",
        "work directory mounted at /analysis"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("from-guest.txt")).unwrap(),
        "inside\n"
    );
    session.close().await.unwrap();

    // Any other host key is refused, even though login would otherwise work.
    let stranger = MachineKeys::generate("stranger").unwrap();
    match ssh::connect(
        &endpoint,
        &keys.client,
        stranger.host.public_key(),
        ssh::ConnectPolicy::local_vm(Duration::from_secs(20)),
    )
    .await
    {
        Err(SshError::HostKeyMismatch { .. }) => {}
        other => panic!("expected a host key mismatch, got {other:?}"),
    }

    let clean = lifecycle::shutdown(&conn, &domain_name, Duration::from_secs(90))
        .await
        .unwrap();
    assert!(
        clean,
        "the guest powered off on ACPI shutdown\nconsole:\n{}",
        console_tail(&console)
    );
    assert_eq!(
        sloop_core::machine::domain_state(&conn, &domain_name)
            .await
            .unwrap(),
        MachineState::Stopped
    );
    lifecycle::undefine(&conn, &domain_name).await.unwrap();
    assert!(
        !lifecycle::is_defined(&conn, &domain_name).await.unwrap(),
        "nothing left defined"
    );
    assert_eq!(
        sha512_file(&base),
        base_sha512,
        "the base image is never written"
    );
}

fn console_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
