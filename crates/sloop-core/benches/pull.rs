//! Sloop's verified pull against the plain route, `curl -o FILE URL && sha512sum FILE`, both from
//! the same loopback HTTPS server (the integration tests' server, with a certificate for
//! 127.0.0.1 from a test CA), both writing to the same disk-backed file system.
//!
//! Run with `scripts/bench-pull.sh` or `cargo bench -p sloop-core --bench pull`. Environment:
//! `SLOOP_BENCH_BYTES` (image size, default 1 GiB), `SLOOP_BENCH_ROUNDS` (default 3),
//! `SLOOP_BENCH_DIR` (where the temporary files go, default /var/tmp).
//!
//! The server runs on a runtime of its own (its own threads, like a separate process would), so
//! it is the same for both routes; Sloop's pull runs on a second runtime as in the app. The rounds
//! alternate which route goes first, and `sync` runs (untimed) before each timed run so that one
//! route's dirty pages are not written back on the other's time. Sloop's time includes its
//! `fsync` of the image before moving it into the store; the plain route's does not sync.

// A benchmark reports on stdout and fails loudly, like a test.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

// The tests' HTTPS server. The bench uses only part of it; its own tests are compiled here too
// (cfg(test) is set for benches) but without a harness, so their imports go unused.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/https.rs"]
mod https;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha512};
use sloop_core::image::Store;
use sloop_core::image::pull::{Wanted, fetch_verified};
use sloop_core::paths::Paths;
use sloop_core::pki::{self, CertificateSpec};
use sloop_core::progress::Reporter;
use tokio_util::sync::CancellationToken;

use crate::https::{Behaviour, HttpsServer};

const DEFAULT_BYTES: usize = 1024 * 1024 * 1024;
const DEFAULT_ROUNDS: usize = 3;
const DEFAULT_DIR: &str = "/var/tmp";

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a whole number")),
        Err(_) => default,
    }
}

/// Deterministic, incompressible bytes (xorshift64), as the tests' images.
fn image_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
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

/// The first line a command prints, or why there is none.
fn first_line(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(e) => format!("({program}: {e})"),
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Writes dirty pages back, so that a run does not pay for the previous one's.
fn sync_disks() {
    nix::unistd::sync();
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

fn median(times: &[Duration]) -> f64 {
    let mut secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    let n = secs.len();
    if n % 2 == 1 {
        secs[n / 2]
    } else {
        (secs[n / 2 - 1] + secs[n / 2]) / 2.0
    }
}

/// Sloop's route: `fetch_verified` into the store, then the stored file deleted (untimed).
fn run_sloop(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    wanted: &Wanted,
    anchors: &Path,
) -> Duration {
    sync_disks();
    let started = Instant::now();
    let path = runtime
        .block_on(fetch_verified(
            store,
            wanted,
            anchors,
            &Reporter::silent(),
            &CancellationToken::new(),
        ))
        .unwrap_or_else(|e| panic!("Sloop's pull failed: {e}"));
    let took = started.elapsed();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        wanted.size,
        "the stored file has the image's size"
    );
    std::fs::remove_file(&path).unwrap();
    assert!(
        store.partial_len(&wanted.sha512).is_none(),
        "no partial file is left"
    );
    took
}

/// The plain route: `curl -sS --fail --cacert CA -o FILE URL`, then `sha512sum FILE`; the file
/// deleted after (untimed).
fn run_plain(ca_pem: &Path, file: &Path, url: &str, sha512: &str) -> Plain {
    sync_disks();
    let started = Instant::now();
    let curl = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(ca_pem)
        .arg("-o")
        .arg(file)
        .arg(url)
        .status()
        .expect("run curl");
    let downloaded = started.elapsed();
    assert!(curl.success(), "curl failed: {curl}");
    let sum = Command::new("sha512sum")
        .arg(file)
        .output()
        .expect("run sha512sum");
    let took = started.elapsed();
    assert!(sum.status.success(), "sha512sum failed: {}", sum.status);
    let printed = String::from_utf8_lossy(&sum.stdout);
    let digest = printed.split_whitespace().next().unwrap_or("");
    assert_eq!(digest, sha512, "sha512sum of curl's file");
    // What Sloop pays and the plain route does not: writing the file to disk (not counted).
    let syncing = Instant::now();
    std::fs::File::open(file).unwrap().sync_all().unwrap();
    let fsync = syncing.elapsed();
    std::fs::remove_file(file).unwrap();
    Plain {
        took,
        curl: downloaded,
        fsync,
    }
}

/// One run of the plain route.
struct Plain {
    /// curl and sha512sum: what is compared.
    took: Duration,
    /// The curl part of it.
    curl: Duration,
    /// An fsync of the file afterwards, not counted.
    fsync: Duration,
}

fn bench_dir() -> PathBuf {
    std::env::var_os("SLOOP_BENCH_DIR").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

fn main() {
    let bytes = env_number("SLOOP_BENCH_BYTES", DEFAULT_BYTES);
    let rounds = env_number("SLOOP_BENCH_ROUNDS", DEFAULT_ROUNDS).max(1);
    assert!(bytes > 0, "SLOOP_BENCH_BYTES must be above 0");
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("pull bench: curl is not installed; apt-get install curl");
        std::process::exit(1);
    }

    let parent = bench_dir();
    let dir = tempfile::Builder::new()
        .prefix("sloop-bench-pull-")
        .tempdir_in(&parent)
        .unwrap_or_else(|e| {
            panic!(
                "cannot make a temporary folder in {}: {e}",
                parent.display()
            )
        });
    let fs = first_line(
        "findmnt",
        &[
            "-n",
            "-o",
            "FSTYPE,SOURCE,TARGET",
            "-T",
            &dir.path().display().to_string(),
        ],
    );

    println!("== Sloop verified pull vs curl + sha512sum (loopback HTTPS) ==");
    println!(
        "machine: nproc {}, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!("curl:    {}", first_line("curl", &["--version"]));
    println!("sha512sum: {}", first_line("sha512sum", &["--version"]));
    println!("files:   {} ({fs})", dir.path().display());
    if fs.starts_with("tmpfs") {
        println!(
            "warning: {} is tmpfs (memory, not disk); set SLOOP_BENCH_DIR to a disk-backed folder",
            dir.path().display()
        );
    }
    println!(
        "image:   {bytes} bytes ({:.1} MiB), pseudo-random; {rounds} rounds, alternating order",
        bytes as f64 / (1024.0 * 1024.0)
    );

    // Untimed set-up: the bytes, their SHA-512, a CA in an anchors folder, the server.
    let body = Arc::new(image_bytes(bytes));
    let hashing = Instant::now();
    let sha512 = hex::encode(Sha512::digest(body.as_slice()));
    let hashing = hashing.elapsed().as_secs_f64();
    println!(
        "hashing: sha2 SHA-512 in memory (Sloop's hasher, one core) {:.1} MB/s",
        mb_per_s(bytes, hashing)
    );

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ca = pki::issue(
        &CertificateSpec {
            subject: "/DC=org/DC=example/O=Bench/CN=Bench CA",
            not_before: now - 3600,
            not_after: now + 86_400,
            ca: true,
            server_names: &[],
        },
        None,
    )
    .unwrap();
    let tls = pki::issue(
        &CertificateSpec {
            subject: "/DC=org/DC=example/CN=127.0.0.1",
            not_before: now - 3600,
            not_after: now + 86_400,
            ca: false,
            server_names: &["IP:127.0.0.1"],
        },
        Some(&ca),
    )
    .unwrap();
    let anchors = dir.path().join("certificates");
    std::fs::create_dir_all(&anchors).unwrap();
    pki::install_anchor(&anchors, &ca.certificate).unwrap();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.certificate.to_pem().unwrap()).unwrap();

    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-server")
        .enable_all()
        .build()
        .unwrap();
    let server = server_runtime.block_on(HttpsServer::start(
        &tls.certificate.to_pem().unwrap(),
        &tls.key.private_key_to_pem_pkcs8().unwrap(),
    ));
    server.route("/image.qcow2", Behaviour::Serve(Arc::clone(&body)));
    let url = format!("{}/image.qcow2", server.base_url());

    let sloop_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-sloop")
        .enable_all()
        .build()
        .unwrap();
    let paths = Paths::under(dir.path().join("home")).unwrap();
    let store = Store::new(&paths);
    let wanted = Wanted {
        sha512: sha512.clone(),
        size: bytes as u64,
        location: url.clone(),
        task: "pull:bench".into(),
    };
    let plain_file = dir.path().join("plain.img");

    // Other work on the machine skews the figures: shown so that a reader can tell.
    let load_before = load_average();
    let mut sloop_times = Vec::new();
    let mut plain_times = Vec::new();
    for round in 1..=rounds {
        let sloop_first = round % 2 == 1;
        let mut line = format!("round {round}:");
        for sloop_turn in [sloop_first, !sloop_first] {
            if sloop_turn {
                let took = run_sloop(&sloop_runtime, &store, &wanted, &anchors);
                line.push_str(&format!(
                    "  sloop {:7.3} s ({:6.1} MB/s)",
                    took.as_secs_f64(),
                    mb_per_s(bytes, took.as_secs_f64())
                ));
                sloop_times.push(took);
            } else {
                let plain = run_plain(&ca_pem, &plain_file, &url, &sha512);
                line.push_str(&format!(
                    "  plain {:7.3} s ({:6.1} MB/s; curl {:.3} s + sha512sum {:.3} s; \
                     an fsync after would add {:.3} s)",
                    plain.took.as_secs_f64(),
                    mb_per_s(bytes, plain.took.as_secs_f64()),
                    plain.curl.as_secs_f64(),
                    (plain.took - plain.curl).as_secs_f64(),
                    plain.fsync.as_secs_f64()
                ));
                plain_times.push(plain.took);
            }
        }
        println!(
            "{line}{}",
            if sloop_first {
                "  [sloop first]"
            } else {
                "  [plain first]"
            }
        );
    }

    let sloop = median(&sloop_times);
    let plain = median(&plain_times);
    println!(
        "median sloop: {sloop:.3} s ({:.1} MB/s)",
        mb_per_s(bytes, sloop)
    );
    println!(
        "median plain: {plain:.3} s ({:.1} MB/s)",
        mb_per_s(bytes, plain)
    );
    println!("ratio sloop/plain = {:.2}", sloop / plain);
    println!("load:    {} (before: {load_before})", load_average());

    drop(server);
    drop(server_runtime);
}
