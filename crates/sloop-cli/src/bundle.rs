//! `sloop machine export|import` and `sloop bundle inspect|verify`: machines as signed bundles.

use std::path::PathBuf;
use std::process::ExitCode;

use sloop_core::TaskId;
use sloop_core::bundle::BundleReport;
use sloop_core::bundle::export::ExportRequest;
use sloop_core::bundle::import::ImportRequest;

use crate::{Context, output, progress};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BundleCommand {
    /// Show a bundle's provenance and how each check went (exit 0 when it can be read).
    Inspect { file: PathBuf },
    /// Check a bundle: signature (grid trust anchors, proxies allowed, CRLs), overlay digest and
    /// shape, base certified here. Exit 0 only when everything holds.
    Verify { file: PathBuf },
}

/// `sloop machine export`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ExportArgs {
    name: String,
    /// The bundle to write (default: NAME.sloop here). Never overwritten.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// A note for whoever receives it.
    #[arg(long, default_value = "")]
    note: String,
    /// Do not sign (no grid identity vouches for it; importers must agree to that).
    #[arg(long)]
    unsigned: bool,
    /// Stop the machine first when it runs (a running machine is never copied).
    #[arg(long)]
    stop: bool,
}

/// `sloop machine import`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ImportArgs {
    file: PathBuf,
    /// The new machine's name (default: the name in the bundle).
    #[arg(long)]
    name: Option<String>,
    /// Host folder shared read-write at /analysis inside.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Import a bundle nobody signed.
    #[arg(long)]
    allow_unsigned: bool,
    /// Import a bundle signed by someone you have not imported from before.
    #[arg(long)]
    trust_signer: bool,
}

pub(crate) async fn export(ctx: &Context, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let output = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{}.sloop", args.name)));
    let request = ExportRequest {
        machine: args.name.clone(),
        output,
        note: args.note,
    };
    let follow = progress::Follow::start(ctx, Some(TaskId::new("export", &args.name)));
    let exported = ctx.core.export(&request, !args.unsigned, args.stop).await;
    follow.end().await;
    let exported = exported?;
    if ctx.json {
        output::json(&exported)?;
    } else {
        output::text(&format!(
            "Exported machine {} to {} ({}).\n{}\n",
            args.name,
            exported.file,
            output::bytes(exported.bytes),
            exported.provenance
        ));
        if exported.signed_by.is_none() {
            output::warn("the bundle is not signed; importers must pass --allow-unsigned");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn import(ctx: &Context, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let request = ImportRequest {
        file: args.file,
        name: args.name,
        work_dir: args.workdir,
        allow_unsigned: args.allow_unsigned,
        trust_signer: args.trust_signer,
    };
    let task = ctx.core.import_task(&request)?;
    let follow = progress::Follow::start(ctx, Some(task));
    let imported = ctx.core.import(&request).await;
    follow.end().await;
    let imported = imported?;
    if ctx.json {
        output::json(&imported)?;
    } else {
        output::text(&format!(
            "Imported machine {} (fresh SSH keys, new instance).\n{}\nStart it with: sloop machine start {}\n",
            imported.machine.name, imported.provenance, imported.machine.name
        ));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(ctx: &Context, command: BundleCommand) -> anyhow::Result<ExitCode> {
    match command {
        BundleCommand::Inspect { file } => {
            let follow = progress::Follow::start(ctx, None);
            let report = ctx.core.inspect_bundle(&file).await;
            follow.end().await;
            let report = report?;
            if ctx.json {
                output::json(&report)?;
            } else {
                output::text(&render(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        BundleCommand::Verify { file } => {
            let follow = progress::Follow::start(ctx, None);
            let report = ctx.core.verify_bundle(&file).await;
            follow.end().await;
            let report = report?;
            if ctx.json {
                output::json(&report)?;
            } else {
                output::text(&format!(
                    "Bundle {} holds: signed by {}.\n{}\n",
                    report.file,
                    report
                        .signer
                        .as_ref()
                        .map_or("nobody", |s| s.identity.as_str()),
                    report.provenance
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn render(report: &BundleReport) -> String {
    let m = &report.manifest;
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    let mut out = format!(
        "{}\n  {}\n  machine    {} ({} vCPU, {} MiB, {} GiB disk)\n  base       {} (SHA-512 {}…, {})\n  list       {} at {}\n  endorser   {} (CA {})\n  changes    {} in the bundle, {} disk\n  made       {} by {}\n",
        report.file,
        report.provenance,
        m.machine,
        m.resources.vcpus,
        m.resources.memory_mib,
        m.resources.disk_gib,
        m.base.title,
        &m.base.sha512[..16],
        output::bytes(m.base.size),
        m.base.list.identifier,
        if m.base.list.url.is_empty() {
            "-"
        } else {
            &m.base.list.url
        },
        m.base.list.endorser_dn,
        m.base.list.endorser_ca,
        output::bytes(m.overlay.size),
        output::bytes(m.overlay.virtual_size),
        m.created_at,
        m.tool,
    );
    if m.layout == sloop_core::machine::DiskLayout::LiveCd {
        out.push_str("  layout     boots from the base, an ISO image (read-only CD); the changes are its own disk\n");
    }
    if !m.note.is_empty() {
        out.push_str(&format!("  note       {}\n", m.note));
    }
    out.push_str(&format!(
        "\n  {}  signature  {}\n  {}  overlay    {}\n  {}  base       {}\n",
        mark(report.signature.ok),
        report.signature.detail,
        mark(report.overlay.ok),
        report.overlay.detail,
        mark(report.base.ok),
        report.base.detail
    ));
    out.push_str(if report.verified {
        "\nEverything holds.\n"
    } else {
        "\nNot everything holds: see FAIL above.\n"
    });
    out
}
