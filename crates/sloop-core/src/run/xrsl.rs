//! The job description (xRSL) of a grid run: what the site's admins and batch system see. It
//! names the VM job script, its arguments (the digests it must verify before booting), the base
//! image's URL for the CE's cache, the uploaded files, the outputs, resources, the runtime
//! environment and the delegation.

use std::fmt::Write as _;

/// The job's executable, uploaded with the job.
pub const JOB_SCRIPT_NAME: &str = "sloop-vm-job.sh";
/// Session file names the job script expects (it takes no paths from anyone).
pub const BASE: &str = "base";
pub const OVERLAY: &str = "overlay.qcow2";
pub const SEED: &str = "seed.iso";
/// Where uploaded inputs go; shared into the machine at /analysis.
pub const ANALYSIS: &str = "analysis";
/// What comes back.
pub const OUTPUT_DIR: &str = "analysis/output/";
pub const CONSOLE_LOG: &str = "console.log";
pub const STATUS: &str = "sloop-status";
pub const STDOUT: &str = "job.out";
pub const STDERR: &str = "job.err";
pub const CHANGES: &str = "changes.qcow2";
/// A renewed proxy Sloop hands a running job; the VM job places it in the machine.
pub const PROXY_RENEWAL: &str = "sloop-proxy-renewal.pem";
/// A relayed run's files: the relay (`user=`, `host=`, `port=` lines), its host key as a
/// known_hosts line, and the run's private key for it (which may only hold a reverse forward).
pub const RELAY_CONF: &str = "sloop-relay.conf";
pub const RELAY_KNOWN_HOSTS: &str = "sloop-relay-known-hosts";
pub const RELAY_KEY: &str = "sloop-relay.key";

/// Everything the description says.
#[derive(Debug, Clone)]
pub struct JobSpec<'a> {
    pub name: &'a str,
    pub base_url: &'a str,
    pub base_sha512: &'a str,
    /// How the machine's disk is read from the base (the runnable base's derivation).
    pub base_layout: &'a BaseLayout,
    pub overlay_sha512: &'a str,
    /// Session names of the uploaded inputs, each under `analysis/`.
    pub inputs: &'a [String],
    pub cpus: u32,
    pub memory_mib: u32,
    pub walltime_secs: u64,
    pub interactive: bool,
    pub keep_changes: bool,
    /// An interactive run reached through a relay: the relay files are uploaded.
    pub relay: bool,
    pub delegation: &'a str,
}

/// How the site reads the machine's disk from the certified base, as Sloop did here: the
/// disk's format, the compression to undo first, the window of an OVA's disk member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseLayout {
    /// qemu-img's name: `qcow2`, `raw`, `vmdk`, `vdi`, `vpc`, `vhdx`.
    pub format: String,
    /// `gzip`, `bzip2`, `xz` or `zstd`.
    pub unpack: Option<String>,
    /// Offset and length of the disk inside the (unpacked) base.
    pub window: Option<[u64; 2]>,
}

impl BaseLayout {
    /// A qcow2 base as listed: the job's default.
    pub fn qcow2() -> Self {
        Self {
            format: "qcow2".into(),
            unpack: None,
            window: None,
        }
    }

    /// The layout of a runnable base's derivation.
    pub fn of(derivation: &crate::image::base::Derivation) -> Self {
        Self {
            format: derivation.format.clone(),
            unpack: derivation.compression.clone(),
            window: derivation.window,
        }
    }
}

/// Memory QEMU needs beyond the guest's: what the job asks the batch system for on top.
pub const QEMU_OVERHEAD_MIB: u32 = 256;

/// An xRSL string literal.
fn lit(text: &str) -> String {
    // xRSL quotes with "..." and doubles an inner quote.
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The description.
pub fn describe(spec: &JobSpec<'_>) -> String {
    let mut arguments = vec![
        "--base-sha512".to_string(),
        spec.base_sha512.to_string(),
        "--overlay-sha512".into(),
        spec.overlay_sha512.to_string(),
        "--memory".into(),
        spec.memory_mib.to_string(),
        "--cpus".into(),
        spec.cpus.to_string(),
        "--walltime".into(),
        spec.walltime_secs.to_string(),
    ];
    if spec.interactive {
        arguments.push("--interactive".into());
    }
    if spec.keep_changes {
        arguments.push("--keep-changes".into());
    }
    if spec.relay {
        arguments.push("--relay".into());
    }
    let layout = spec.base_layout;
    if layout.format != "qcow2" {
        arguments.extend(["--base-format".into(), layout.format.clone()]);
    }
    if let Some(unpack) = &layout.unpack {
        arguments.extend(["--base-unpack".into(), unpack.clone()]);
    }
    if let Some([offset, length]) = layout.window {
        arguments.extend(["--base-window".into(), format!("{offset}:{length}")]);
    }
    let mut x = String::from("&\n");
    let _ = writeln!(x, " (jobname={})", lit(spec.name));
    let _ = writeln!(x, " (executable={})", lit(JOB_SCRIPT_NAME));
    let _ = writeln!(
        x,
        " (arguments={})",
        arguments
            .iter()
            .map(|a| lit(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(x, " (runtimeenvironment={})", lit(crate::site::RTE_NAME));
    x.push_str(" (inputfiles=\n");
    let _ = writeln!(x, "   ({} \"\")", lit(JOB_SCRIPT_NAME));
    // The CE fetches the base once for all its users' runs and keeps it (the URL names an
    // immutable, endorsed file); the job checks its SHA-512 before booting.
    let _ = writeln!(
        x,
        "   ({} {} \"cache=invariant\")",
        lit(BASE),
        lit(spec.base_url)
    );
    let _ = writeln!(x, "   ({} \"\")", lit(OVERLAY));
    let _ = writeln!(x, "   ({} \"\")", lit(SEED));
    if spec.relay {
        for name in [RELAY_CONF, RELAY_KNOWN_HOSTS, RELAY_KEY] {
            let _ = writeln!(x, "   ({} \"\")", lit(name));
        }
    }
    for input in spec.inputs {
        let _ = writeln!(x, "   ({} \"\")", lit(input));
    }
    x.push_str(" )\n (outputfiles=\n");
    // The job's stdout and stderr are kept only when listed (REST submission adds nothing).
    let mut outputs = vec![OUTPUT_DIR, CONSOLE_LOG, STATUS, STDOUT, STDERR];
    if spec.keep_changes {
        outputs.push(CHANGES);
    }
    for output in outputs {
        let _ = writeln!(x, "   ({} \"\")", lit(output));
    }
    x.push_str(" )\n");
    let _ = writeln!(x, " (stdout={})(stderr={})", lit(STDOUT), lit(STDERR));
    let _ = writeln!(x, " (gmlog=\"gmlog\")");
    let _ = writeln!(x, " (count={})", spec.cpus);
    let _ = writeln!(x, " (memory={})", spec.memory_mib + QEMU_OVERHEAD_MIB);
    // A bare number is read as minutes by user-side xRSL and as seconds by A-REX's own parser
    // (the REST interface): an ISO 8601 duration means the same to both.
    let _ = writeln!(x, " (walltime=\"PT{}S\")", spec.walltime_secs);
    let _ = writeln!(x, " (delegationid={})", lit(spec.delegation));
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_snapshot() {
        let inputs = vec!["analysis/data.txt".to_string()];
        let text = describe(&JobSpec {
            name: "sloop-demo-1a2b3c4d",
            base_url: "https://images.example.org/base-\"x\".qcow2",
            base_sha512: "ab",
            base_layout: &BaseLayout::qcow2(),
            overlay_sha512: "cd",
            inputs: &inputs,
            cpus: 1,
            memory_mib: 512,
            walltime_secs: 3601,
            interactive: false,
            keep_changes: true,
            relay: false,
            delegation: "ec0e18f5ad8a",
        });
        insta::assert_snapshot!(text);
    }

    /// An OVA base compressed with xz: the job is told the disk's format, the unpacking and
    /// the member's window; a qcow2 base as listed adds nothing.
    #[test]
    fn a_base_that_is_not_qcow2_as_listed_is_described_to_the_job() {
        let spec = |layout: &BaseLayout| {
            describe(&JobSpec {
                name: "n",
                base_url: "https://i.example.org/b.ova.xz",
                base_sha512: "ab",
                base_layout: layout,
                overlay_sha512: "cd",
                inputs: &[],
                cpus: 1,
                memory_mib: 512,
                walltime_secs: 60,
                interactive: false,
                keep_changes: false,
                relay: false,
                delegation: "d",
            })
        };
        let ova = BaseLayout {
            format: "vmdk".into(),
            unpack: Some("xz".into()),
            window: Some([1536, 28_000_000]),
        };
        assert!(spec(&ova).contains(
            r#""--base-format" "vmdk" "--base-unpack" "xz" "--base-window" "1536:28000000")"#
        ));
        assert!(!spec(&BaseLayout::qcow2()).contains("\"--base-format\""));
        // A compressed ISO (µCernVM style): booted as a CD there, after unpacking.
        let iso = BaseLayout {
            format: "iso".into(),
            unpack: Some("gzip".into()),
            window: None,
        };
        let text = spec(&iso);
        assert!(
            text.contains(r#""--base-format" "iso" "--base-unpack" "gzip")"#),
            "{text}"
        );
        assert!(!text.contains("--base-window"), "{text}");
    }
}
