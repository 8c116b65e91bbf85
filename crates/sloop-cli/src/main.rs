//! `sloop`: every core capability from the command line, with human output and `--json`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sloop_core::Core;
use sloop_core::config::Config;
use sloop_core::host::{CheckStatus, HostReport};
use sloop_core::logging::{self, LogOptions};
use sloop_core::machine::MachineSummary;
use sloop_core::paths::Paths;

mod bundle;
mod catalog;
mod grid;
mod image;
mod machine;
mod output;
mod progress;
mod proxy;
mod tutorial;

/// The version `sloop --version` prints: the workspace's, and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SLOOP_COMMIT"),
    ")"
);

/// Sloop carries your analysis VM from the laptop to the grid, unchanged.
#[derive(Debug, Parser)]
#[command(name = "sloop", version = VERSION)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Show more of what Sloop does (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that this host can run machines, and say how to fix what is missing.
    Doctor {
        /// Reuse the last acceleration test instead of booting a test guest again.
        #[arg(long)]
        cached: bool,
    },
    /// Subscribed image lists (HEPiX, S/MIME signed by an endorser).
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Certified images: list, pull into the verified store, remove.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Your machines.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Run a command in a machine over SSH (its pinned host key only): sloop shell NAME -- CMD
    Shell {
        name: String,
        /// The command and its arguments; without one, an interactive shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Write an ssh config for your machines and your interactive runs at grid sites (those that
    /// answer now), for your own ssh, scp and editors.
    SshConfig,
    /// Bundles (a machine's changes with signed provenance): inspect, verify.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Your grid proxy: info, init (make one), attach to / detach from machines, watch.
    #[command(subcommand)]
    Proxy(proxy::ProxyCommand),
    /// Grid sites (ARC Computing Elements): add, list, info, remove, and the RTE for admins.
    #[command(subcommand)]
    Site(grid::SiteCommand),
    /// Machines running at grid sites: submit, list, info, logs, cancel, clean, fetch.
    #[command(subcommand)]
    Run(grid::RunCommand),
    /// Tutorials: one file gives every student the same machine and material (open, reset;
    /// trainers: create, mirror, check).
    #[command(subcommand)]
    Tutorial(tutorial::TutorialCommand),
    /// Pull an image if needed, create a machine from it and start it, in one go.
    Launch {
        image: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        workdir: Option<std::path::PathBuf>,
        #[command(flatten)]
        resources: machine::ResourceArgs,
    },
    /// Print a shell completion script: sloop completions bash > ~/.local/share/bash-completion/completions/sloop
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), for packagers: sloop manpage > sloop.1
    #[command(hide = true)]
    Manpage,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CatalogCommand {
    /// Subscribe to an image list: an https://, http:// or file:// URL, a list file, or a mirror
    /// folder (the list with its images beside it). The list must pass every check; its
    /// identifier and endorser are then pinned.
    Add {
        /// Where the list is. Not with --demo.
        #[arg(required_unless_present = "demo", conflicts_with = "demo")]
        source: Option<String>,
        /// The catalog's name (default: made from the list's title).
        #[arg(long)]
        name: Option<String>,
        /// Refuse the list unless its dc:identifier is this.
        #[arg(long)]
        identifier: Option<String>,
        /// Refuse the list unless its signer's subject is this DN (/DC=.../CN=...).
        #[arg(long)]
        endorser_dn: Option<String>,
        /// Refuse the list unless its signer was issued by this CA DN.
        #[arg(long)]
        endorser_ca: Option<String>,
        /// Trust anchors for this catalog alone (default: the grid CA folder).
        #[arg(long)]
        ca_dir: Option<std::path::PathBuf>,
        /// Subscribe to the offline demo catalog, building it first when needed.
        #[arg(long)]
        demo: bool,
        /// The image the demo catalog is built from (default: $SLOOP_DEMO_IMAGE, else the one the
        /// package installs). Its ISO variant, listed beside it when there is one, is
        /// $SLOOP_DEMO_LIVE_ISO, else the one the package installs.
        #[arg(long, requires = "demo")]
        image: Option<std::path::PathBuf>,
    },
    /// Show the catalogs, each verified again now, with their images.
    List,
    /// Fetch lists again (all when no name is given).
    Refresh { name: Option<String> },
    /// Forget a catalog. Downloaded images stay in the store.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImageCommand {
    /// Every catalog image with its state here, then stored images no catalog lists.
    List,
    /// Download an image into the verified store (resumes an interrupted download).
    Pull {
        /// Identifier (or its start), SHA-512 (or its start), or exact title.
        image: String,
    },
    /// Remove an image from the store (refused while a machine is built on it).
    Rm { image: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MachineCommand {
    /// List machines with their real state.
    List,
    /// Make a machine from a certified, downloaded image (left stopped).
    Create {
        name: String,
        /// Image identifier (or its start), SHA-512 start, or title.
        #[arg(long)]
        image: String,
        #[command(flatten)]
        resources: machine::ResourceArgs,
        /// Host folder shared read-write at /analysis inside.
        #[arg(long)]
        workdir: Option<std::path::PathBuf>,
    },
    /// Start a machine and wait until its SSH server answers with its pinned key.
    Start {
        name: String,
        /// Return once libvirt has started it, without waiting for SSH.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for SSH, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Shut a machine down (ACPI), forcing it off after --timeout seconds.
    Stop {
        name: String,
        /// Pull the plug at once instead.
        #[arg(long)]
        force: bool,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Stop, then start again.
    Restart { name: String },
    /// Delete a machine with its overlay (your changes to its disk). Asks first.
    Delete {
        name: String,
        /// Do not ask (scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Everything about one machine.
    Info { name: String },
    /// The machine's serial console (the current boot).
    Console { name: String },
    /// Write a stopped machine's changes into a signed bundle (NAME.sloop).
    Export(bundle::ExportArgs),
    /// Make a new machine from a bundle (fresh SSH keys; pulls the base when needed).
    Import(bundle::ImportArgs),
}

/// Everything a command needs: the core, which every workflow goes through, and how to print.
pub(crate) struct Context {
    pub(crate) core: Core,
    /// The core's settings; the CLI refuses to start without them.
    config: Config,
    pub(crate) json: bool,
}

impl Context {
    pub(crate) fn paths(&self) -> &Paths {
        self.core.paths()
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // These describe the command line itself: no Sloop home, settings or log needed.
    match cli.command {
        Command::Completions { shell } => return print_completions(shell),
        Command::Manpage => return print_manpage(),
        _ => {}
    }
    let stderr_filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let setup = (|| -> anyhow::Result<_> {
        let paths = Paths::from_env()?;
        let config = Config::load(&paths.config_file())?;
        let guard = logging::init(
            &paths,
            LogOptions {
                stderr_filter: Some(stderr_filter.into()),
                sink: None,
            },
        )?;
        Ok((paths, config, guard))
    })();
    let (paths, config, _guard) = match setup {
        Ok(setup) => setup,
        Err(e) => return output::fail(&e),
    };
    let ctx = Context {
        core: Core::with_config(paths, Ok(config.clone())),
        config,
        json: cli.json,
    };
    match run(&ctx, cli.command).await {
        Ok(code) => code,
        Err(e) => output::fail(&e),
    }
}

async fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Doctor { cached } => doctor(ctx, cached).await,
        Command::Catalog(command) => catalog::run(ctx, command).await,
        Command::Image(command) => image::run(ctx, command).await,
        Command::Machine(command) => machine::run(ctx, command).await,
        Command::Shell { name, command } => machine::shell(ctx, &name, &command).await,
        Command::SshConfig => machine::ssh_config(ctx).await,
        Command::Proxy(command) => proxy::run(ctx, command).await,
        Command::Bundle(command) => bundle::run(ctx, command).await,
        Command::Site(command) => grid::site(ctx, command).await,
        Command::Run(command) => grid::run(ctx, command).await,
        Command::Tutorial(command) => tutorial::run(ctx, command).await,
        Command::Launch {
            image,
            name,
            workdir,
            resources,
        } => machine::launch(ctx, &image, &name, workdir, &resources).await,
        // main() answers these before setup; here for completeness.
        Command::Completions { shell } => Ok(print_completions(shell)),
        Command::Manpage => Ok(print_manpage()),
    }
}

fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "sloop", &mut out);
    output::text(&String::from_utf8_lossy(&out));
    ExitCode::SUCCESS
}

fn print_manpage() -> ExitCode {
    let command = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    match clap_mangen::Man::new(command).render(&mut out) {
        Ok(()) => {
            output::text(&String::from_utf8_lossy(&out));
            ExitCode::SUCCESS
        }
        Err(e) => output::fail(&anyhow::Error::new(e).context("cannot write the man page")),
    }
}

async fn doctor(ctx: &Context, cached: bool) -> anyhow::Result<ExitCode> {
    let report = ctx.core.check_host(!cached).await?;
    if ctx.json {
        output::json(&report)?;
    } else {
        output::text(&render_report(&report));
    }
    // Scripts can tell "machines can run here" from the exit status.
    Ok(if report.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn render_report(report: &HostReport) -> String {
    let mut out = String::new();
    for check in &report.checks {
        let mark = match check.status {
            CheckStatus::Ok => "ok     ",
            CheckStatus::Warning => "warning",
            CheckStatus::Missing => "MISSING",
        };
        out.push_str(&format!("{mark}  {:<26} {}\n", check.title, check.detail));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("{:<9}  {:<26} fix: {fix}\n", "", ""));
        }
    }
    out.push('\n');
    out.push_str(if report.ready {
        "This host can run Sloop machines.\n"
    } else {
        "This host cannot run Sloop machines yet: fix the MISSING items above.\n"
    });
    out
}

pub(crate) async fn machine_list(ctx: &Context) -> anyhow::Result<ExitCode> {
    let machines = ctx.core.machines().await.context("cannot list machines")?;
    if ctx.json {
        output::json(&machines)?;
    } else if machines.is_empty() {
        output::text("No machines yet.\n");
    } else {
        output::text(&render_machines(&machines));
    }
    Ok(ExitCode::SUCCESS)
}

fn render_machines(machines: &[MachineSummary]) -> String {
    let mut out = format!(
        "{:<20} {:<14} {:>5} {:>8} {:>6}  {}\n",
        "NAME", "STATE", "VCPUS", "MEMORY", "SSH", "IMAGE"
    );
    for m in machines {
        out.push_str(&format!(
            "{:<20} {:<14} {:>5} {:>5}MiB {:>6}  {}\n",
            m.name,
            serde_json::to_value(m.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            m.vcpus,
            m.memory_mib,
            m.ssh_port,
            m.image
        ));
    }
    out
}
