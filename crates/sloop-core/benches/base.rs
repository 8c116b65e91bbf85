//! Preparing a runnable base (image/base.rs) against the plain commands a user would chain, on
//! the same files in the same run:
//! - a raw disk compressed with xz: `xz -d -k -T0 disk.raw.xz` then
//!   `qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2`;
//! - an OVA (as VirtualBox exports: OVF, streamOptimized VMDK, manifest): `tar -xf disk.ova` then
//!   `qemu-img convert -f vmdk -O qcow2 disk.vmdk disk.qcow2`.
//!
//! Each route's time (Sloop's also checks the header and makes the base's SHA-512 for its
//! derivation record, which the plain route does not: that digest's time is printed apart), and
//! its peak extra disk space: the largest number of bytes allocated, while
//! it ran, in the folder it writes to (sampled every 20 ms, beside the input, which both read).
//!
//! Run with `scripts/bench-base.sh` or `cargo bench -p sloop-core --bench base`. Environment:
//! `SLOOP_BENCH_BYTES` (virtual size of the disk, default 1 GiB; a quarter of it random, a
//! quarter text, the rest zeros), `SLOOP_BENCH_ROUNDS` (default 3), `SLOOP_BENCH_DIR` (where the
//! files go, default /var/tmp; disk-backed). Rounds alternate which route goes first; `sync`
//! runs (untimed) before each.

// A benchmark reports on stdout and fails loudly, like a test.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use sloop_core::image::Store;
use sloop_core::image::base::{Wanted, prepare};
use sloop_core::paths::Paths;
use sloop_core::progress::Reporter;
use sloop_testkit::run_in as run;
use tokio_util::sync::CancellationToken;

const DEFAULT_BYTES: u64 = 1 << 30;
const DEFAULT_ROUNDS: usize = 3;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes allocated under `dir` (files' blocks), recursively.
fn allocated(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => allocated(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Runs `work` while sampling the bytes allocated under `dir`: (seconds, peak bytes).
fn measured(dir: &Path, work: impl FnOnce()) -> (f64, u64) {
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, dir) = (Arc::clone(&peak), Arc::clone(&done), dir.to_path_buf());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(allocated(&dir), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    work();
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    peak.fetch_max(allocated(dir), Ordering::Relaxed);
    (seconds, peak.load(Ordering::Relaxed))
}

/// A disk of `bytes`: a quarter random, a quarter text, the rest zeros (sparse).
fn make_disk(path: &Path, bytes: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..bytes / 4 / chunk.len() as u64 {
        openssl::rand::rand_bytes(&mut chunk).unwrap();
        file.write_all(&chunk).unwrap();
    }
    let line = b"sloop benchmark: a line of text as a root file system holds many of them\n";
    let text: Vec<u8> = line.iter().copied().cycle().take(chunk.len()).collect();
    for _ in 0..bytes / 4 / chunk.len() as u64 {
        file.write_all(&text).unwrap();
    }
    file.seek(SeekFrom::Start(bytes - 1)).unwrap();
    file.write_all(&[0]).unwrap();
}

fn ovf(disk: &str, capacity: u64) -> String {
    format!(
        r#"<?xml version="1.0"?>
<Envelope ovf:version="1.0" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="file1" ovf:href="{disk}"/></References>
  <DiskSection><Info>Virtual disks</Info>
    <Disk ovf:capacity="{capacity}" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="bench"><Info>A virtual machine</Info></VirtualSystem>
</Envelope>
"#
    )
}

struct Case {
    name: &'static str,
    input: PathBuf,
    listed: &'static str,
    plain: Vec<(&'static str, Vec<String>)>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bytes = env_or("SLOOP_BENCH_BYTES", DEFAULT_BYTES);
    let rounds = env_or("SLOOP_BENCH_ROUNDS", DEFAULT_ROUNDS).max(1);
    let root = PathBuf::from(env_or("SLOOP_BENCH_DIR", "/var/tmp".to_string()));
    let dir = tempfile::tempdir_in(&root).unwrap();
    let d = dir.path();
    let inputs = d.join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    println!(
        "bench base: a {} MiB disk (a quarter random, a quarter text, the rest zeros), {rounds} rounds, in {}",
        bytes >> 20,
        root.display()
    );
    make_disk(&inputs.join("disk.raw"), bytes);
    run(&inputs, "xz", &["-k", "-1", "-T0", "disk.raw"]);
    run(
        &inputs,
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "disk.raw",
            "disk.vmdk",
        ],
    );
    std::fs::write(inputs.join("disk.ovf"), ovf("disk.vmdk", bytes)).unwrap();
    run(
        &inputs,
        "tar",
        &["--format=ustar", "-cf", "disk.ova", "disk.ovf", "disk.vmdk"],
    );
    std::fs::remove_file(inputs.join("disk.vmdk")).unwrap();
    for f in ["disk.raw.xz", "disk.ova"] {
        println!(
            "  input {f}: {} MiB",
            std::fs::metadata(inputs.join(f)).unwrap().len() >> 20
        );
    }
    std::fs::remove_file(inputs.join("disk.raw")).unwrap();

    let s = |v: &[&str]| v.iter().map(|a| (*a).to_string()).collect::<Vec<_>>();
    let cases = [
        Case {
            name: "raw.xz",
            input: inputs.join("disk.raw.xz"),
            listed: "RAW",
            plain: vec![
                ("xz", s(&["-d", "-k", "-T0", "disk.raw.xz"])),
                (
                    "qemu-img",
                    s(&[
                        "convert",
                        "-f",
                        "raw",
                        "-O",
                        "qcow2",
                        "disk.raw",
                        "disk.qcow2",
                    ]),
                ),
            ],
        },
        Case {
            name: "OVA",
            input: inputs.join("disk.ova"),
            listed: "OVA",
            plain: vec![
                ("tar", s(&["-xf", "disk.ova"])),
                (
                    "qemu-img",
                    s(&[
                        "convert",
                        "-f",
                        "vmdk",
                        "-O",
                        "qcow2",
                        "disk.vmdk",
                        "disk.qcow2",
                    ]),
                ),
            ],
        },
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{:<8} {:>10} {:>10} {:>7} {:>14} {:>14} {:>14}",
        "input",
        "sloop s",
        "plain s",
        "ratio",
        "of it digest s",
        "sloop peak MiB",
        "plain peak MiB"
    );
    for case in &cases {
        let input_name = case
            .input
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let sha512 = sloop_core::fsutil::sha512_file(&case.input).unwrap();
        let (mut sloop_s, mut plain_s, mut digest_s) = (Vec::new(), Vec::new(), Vec::new());
        let (mut sloop_peak, mut plain_peak) = (0, 0);
        for round in 0..rounds {
            let mut sloop_route = || {
                let home = d.join("home");
                let _ = std::fs::remove_dir_all(&home);
                let store = Store::new(&Paths::under(home.clone()).unwrap());
                std::fs::create_dir_all(store.store_dir()).unwrap();
                std::fs::hard_link(&case.input, store.file(&sha512)).unwrap();
                std::fs::create_dir_all(store.bases_dir()).unwrap();
                run(d, "sync", &[]);
                let wanted = Wanted {
                    sha512: &sha512,
                    title: case.name,
                    listed: Some(case.listed),
                    task: "bench",
                    limit: 1 << 40,
                };
                let (seconds, peak) = measured(&store.bases_dir(), || {
                    runtime
                        .block_on(prepare(
                            &store,
                            &wanted,
                            &Reporter::silent(),
                            &CancellationToken::new(),
                        ))
                        .unwrap();
                });
                sloop_s.push(seconds);
                sloop_peak = sloop_peak.max(peak);
                // Part of Sloop's time that the plain route does not do: the SHA-512 of the
                // base for its derivation record (timed again here, on the same file).
                let base = store.runnable(&sha512).unwrap();
                let started = Instant::now();
                sloop_core::fsutil::sha512_file(&base).unwrap();
                digest_s.push(started.elapsed().as_secs_f64());
                std::fs::remove_dir_all(&home).unwrap();
            };
            let mut plain_route = || {
                let work = d.join("plain");
                let _ = std::fs::remove_dir_all(&work);
                std::fs::create_dir(&work).unwrap();
                std::fs::hard_link(&case.input, work.join(&input_name)).unwrap();
                run(d, "sync", &[]);
                // The input itself is not counted: it is the same file both routes read.
                let input_blocks = std::fs::metadata(&case.input).unwrap().blocks() * 512;
                let (seconds, peak) = measured(&work, || {
                    for (program, args) in &case.plain {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        run(&work, program, &args);
                    }
                });
                plain_s.push(seconds);
                plain_peak = plain_peak.max(peak.saturating_sub(input_blocks));
                std::fs::remove_dir_all(&work).unwrap();
            };
            if round % 2 == 0 {
                sloop_route();
                plain_route();
            } else {
                plain_route();
                sloop_route();
            }
        }
        let (sloop, plain) = (median(sloop_s), median(plain_s));
        println!(
            "{:<8} {:>10.2} {:>10.2} {:>7.2} {:>14.2} {:>14} {:>14}",
            case.name,
            sloop,
            plain,
            sloop / plain,
            median(digest_s),
            sloop_peak >> 20,
            plain_peak >> 20
        );
    }
}
