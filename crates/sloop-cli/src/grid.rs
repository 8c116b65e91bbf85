//! `sloop site …` (grid sites: ARC CEs) and `sloop run …` (machines running at them).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use sloop_core::TaskId;
use sloop_core::run::submit::SubmitRequest;
use sloop_core::run::{RunPhase, RunView};
use sloop_core::site::SiteInfo;

use crate::{Context, output, progress};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SiteCommand {
    /// Add a site: an ARC CE's REST endpoint, e.g. https://ce.example.org/arex.
    Add {
        name: String,
        url: String,
        /// The SSH relay (USER@HOST[:PORT]) interactive runs here go through unless `run submit
        /// --relay` names another: for sites whose worker nodes take no inbound connections.
        #[arg(long)]
        relay: Option<String>,
    },
    /// Set or clear (`--none`) the relay of a site's interactive runs.
    Relay {
        name: String,
        /// USER@HOST[:PORT]
        relay: Option<String>,
        #[arg(long, conflicts_with = "relay")]
        none: bool,
    },
    /// The sites you added.
    List,
    /// Ask a site (with your proxy) how it is: health, queues, free slots, limits, and whether
    /// it runs Sloop's VM jobs.
    Info { name: String },
    /// Remove a site from the list (its runs stay until cleaned).
    Remove { name: String },
    /// Print the runtime environment script ENV/SLOOP-VM for a site's admins.
    Rte,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum RunCommand {
    /// Send a machine (stopped) to a grid site: only its changes travel; the site fetches and
    /// caches the certified base itself.
    Submit(SubmitArgs),
    /// Your runs, with their state asked live from the sites.
    List,
    /// One run, asked live from its site.
    Info { run: String },
    /// The run's logs so far: the VM job's, the machine's console, the command's output.
    Logs { run: String },
    /// Ask the site to stop the run.
    Cancel { run: String },
    /// Bring your current proxy (e.g. just renewed) to a queued or running run: the site's
    /// delegation is renewed and the machine gets the new proxy within seconds.
    Renew { run: String },
    /// Remove the run at its site and here (fetched outputs stay).
    Clean { run: String },
    /// Submit again a run whose submit did not end (Sloop killed, network lost): what of it
    /// reached the site is taken back first; the run keeps its id.
    Resume { run: String },
    /// A shell in an interactive run's machine at its site (or a command: its exit status is
    /// the command's), logging in with the run's key and accepting only the run's host key.
    Shell {
        run: String,
        /// How long to wait for the run to start and its machine to answer, e.g. 90s, 10m.
        #[arg(long, default_value = "5m")]
        wait: String,
        /// Through this jump host, USER@HOST[:PORT] (a bastion that can reach the site's worker
        /// nodes; its host key must be in your known_hosts).
        #[arg(long)]
        via: Option<String>,
        /// The command and its arguments; without one, an interactive shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Bring a finished run's outputs back (default: runs/RUN in the machine's work directory).
    Fetch {
        run: String,
        /// The folder to write (made; must not exist).
        #[arg(long)]
        to: Option<PathBuf>,
        /// Also bring back the run's disk changes, as a new machine NAME-from-…
        #[arg(long)]
        keep_changes: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SubmitArgs {
    machine: String,
    /// The site (see `sloop site list`).
    #[arg(long)]
    site: String,
    /// What to run, as the machine's user in /analysis (a shell command line). Without one, the
    /// machine stays up for a debug shell until powered off or its wall time is nearly up.
    #[arg(long)]
    command: Option<String>,
    /// A file or folder copied to /analysis (repeat for more).
    #[arg(long = "input")]
    inputs: Vec<PathBuf>,
    /// Wall time, e.g. 90m, 2h, 1d (default 1h).
    #[arg(long)]
    walltime: Option<String>,
    /// Virtual CPUs (default: the machine's).
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory, e.g. 2048, 2G, 512M (default: the machine's).
    #[arg(long)]
    memory: Option<String>,
    /// Return the run's disk changes too, so `sloop run fetch --keep-changes` can make a machine
    /// of them.
    #[arg(long)]
    keep_changes: bool,
    /// An interactive run's SSH relay, USER@HOST[:PORT]: a login host of yours the job dials out
    /// to, for sites whose worker nodes take no inbound connections (`run shell` goes through
    /// it). Sloop installs a key there that may hold one reverse forward and nothing else.
    #[arg(long)]
    relay: Option<String>,
}

/// `90`, `90s`, `5m`, `1h`: a time to wait, at least a second.
fn seconds(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (number, factor) = match text.char_indices().last()? {
        (i, 's') => (&text[..i], 1),
        (i, 'm') => (&text[..i], 60),
        (i, 'h') => (&text[..i], 3600),
        _ => (text, 1),
    };
    let n: u64 = number.parse().ok()?;
    n.checked_mul(factor)
        .filter(|s| (1..=86_400).contains(s))
        .map(std::time::Duration::from_secs)
}

fn memory_mib(text: &str) -> anyhow::Result<u32> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, factor) = if let Some(n) = lower.strip_suffix('g') {
        (n, 1024)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 1)
    } else {
        (lower.as_str(), 1)
    };
    digits
        .trim()
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| anyhow::anyhow!("memory {text:?} is not valid; use e.g. 2048, 2G or 512M"))
}

pub(crate) async fn site(ctx: &Context, command: SiteCommand) -> anyhow::Result<ExitCode> {
    match command {
        SiteCommand::Relay { name, relay, none } => {
            if relay.is_none() && !none {
                anyhow::bail!("give the relay as USER@HOST[:PORT], or --none to clear it");
            }
            let site = ctx.core.set_site_relay(&name, relay.as_deref()).await?;
            if ctx.json {
                output::json(&site)?;
            } else {
                output::text(&match &site.relay {
                    Some(relay) => format!("Interactive runs at {name} go through {relay}.\n"),
                    None => format!("Interactive runs at {name} go through no relay.\n"),
                });
            }
        }
        SiteCommand::Add { name, url, relay } => {
            // The relay is checked before the site is added: a bad one adds nothing.
            if let Some(relay) = &relay {
                relay
                    .parse::<sloop_core::relay::RelayAddr>()
                    .map_err(anyhow::Error::from)?;
            }
            let mut site = ctx.core.add_site(&name, &url).await?;
            if relay.is_some() {
                site = ctx.core.set_site_relay(&name, relay.as_deref()).await?;
            }
            if ctx.json {
                output::json(&site)?;
            } else {
                output::text(&format!(
                    "Added site {} at {}.\nAsk it how it is with: sloop site info {}\n",
                    site.name, site.url, site.name
                ));
            }
        }
        SiteCommand::List => {
            let sites = ctx.core.sites().await?;
            if ctx.json {
                output::json(&sites)?;
            } else if sites.is_empty() {
                output::text("No sites yet; add one with: sloop site add NAME URL\n");
            } else {
                let mut out = format!("{:<20} {:<40} {}\n", "NAME", "URL", "RELAY");
                for site in &sites {
                    out.push_str(&format!(
                        "{:<20} {:<40} {}\n",
                        site.name,
                        site.url,
                        site.relay.as_deref().unwrap_or("-")
                    ));
                }
                output::text(&out);
            }
        }
        SiteCommand::Info { name } => {
            let info = ctx.core.site_info(&name).await?;
            if ctx.json {
                output::json(&info)?;
            } else {
                output::text(&render_site(&info));
            }
        }
        SiteCommand::Remove { name } => {
            let site = ctx.core.remove_site(&name).await?;
            if ctx.json {
                output::json(&site)?;
            } else {
                output::text(&format!("Removed site {}.\n", site.name));
            }
        }
        SiteCommand::Rte => output::text(sloop_core::run::submit::RTE_SCRIPT),
    }
    Ok(ExitCode::SUCCESS)
}

fn render_site(info: &SiteInfo) -> String {
    let mut out = format!(
        "site        {}\nurl         {}\nREST        {}\nhealth      {}{}\nyou are     {}\nVM jobs     {}\n",
        info.site.name,
        info.site.url,
        info.rest_versions.join(", "),
        info.health,
        info.health_info
            .as_deref()
            .map(|i| format!(" ({i})"))
            .unwrap_or_default(),
        info.identity,
        if info.offers_vm_jobs {
            format!("yes ({})", sloop_core::site::RTE_NAME)
        } else {
            format!(
                "no: {} is not enabled; its admins can enable it (docs/site-admins.md)",
                sloop_core::site::RTE_NAME
            )
        }
    );
    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    if !info.queues.is_empty() {
        out.push_str(&format!(
            "\n{:<16} {:<12} {:>6} {:>8} {:>8} {:>12} {:>10}\n",
            "QUEUE", "STATE", "FREE", "RUNNING", "WAITING", "MAX WALL", "MAX MEM"
        ));
        for q in &info.queues {
            out.push_str(&format!(
                "{:<16} {:<12} {:>6} {:>8} {:>8} {:>12} {:>10}\n",
                q.name,
                q.state.as_deref().unwrap_or("-"),
                n(q.free_slots),
                n(q.running),
                n(q.waiting),
                q.max_wall_time
                    .map(|s| format!("{}h{:02}m", s / 3600, s % 3600 / 60))
                    .unwrap_or_else(|| "-".into()),
                q.max_memory_mib
                    .map(|m| format!("{m}MiB"))
                    .unwrap_or_else(|| "-".into()),
            ));
        }
    }
    out
}

fn phase(view: &RunView) -> &'static str {
    view.phase.as_str()
}

/// "until T (2h 5m left)" for the proxy in a run's machine.
fn proxy_left(until: &str) -> String {
    let left = time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
        .map(|end| (end - time::OffsetDateTime::now_utc()).whole_seconds())
        .unwrap_or(0);
    if left <= 0 {
        format!("in the machine: expired at {until}; renew it (sloop proxy init, sloop run renew)")
    } else {
        format!(
            "in the machine: until {until} ({}h {}m left)",
            left / 3600,
            left % 3600 / 60
        )
    }
}

fn render_run(view: &RunView) -> String {
    let r = &view.record;
    let mut out = format!(
        "run         {}\nmachine     {}\nsite        {} ({})\nstate       {}{}\n",
        r.id,
        r.machine,
        r.site,
        r.site_url,
        phase(view),
        r.state
            .as_deref()
            .map(|s| format!(" (site: {s})"))
            .unwrap_or_default()
    );
    let mut line = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push_str(&format!("{k:<11} {v}\n"));
        }
    };
    line("job", r.job_id.clone());
    line(
        "command",
        Some(
            r.command
                .clone()
                .unwrap_or_else(|| "(interactive: stays up for a debug shell)".into()),
        ),
    );
    line(
        "inputs",
        (!r.inputs.is_empty()).then(|| r.inputs.join(", ")),
    );
    line(
        "resources",
        Some(format!(
            "{} vCPU, {} MiB, wall time {} min",
            r.resources.cpus,
            r.resources.memory_mib,
            r.resources.walltime_secs / 60
        )),
    );
    line("accel", r.accel.clone());
    if view.phase == RunPhase::Running || view.phase == RunPhase::Queued {
        line("proxy", r.proxy_until.as_deref().map(proxy_left));
    }
    if let Some(relay) = &r.relay {
        line(
            "relay",
            Some(format!(
                "{} (run key {})",
                relay.addr(),
                if relay.removed {
                    "removed"
                } else {
                    "installed"
                }
            )),
        );
    }
    line("exit", r.exit_code.map(|c| c.to_string()));
    line("reason", r.reason.clone());
    line("created", Some(r.created.clone()));
    line("submitted", r.submitted.clone());
    line("ended", r.ended.clone());
    line("outputs", r.outputs.clone());
    line("machine↩", r.changed_machine.clone());
    out
}

pub(crate) async fn run(ctx: &Context, command: RunCommand) -> anyhow::Result<ExitCode> {
    match command {
        RunCommand::Submit(args) => {
            let walltime_secs = args
                .walltime
                .as_deref()
                .map(|w| {
                    sloop_core::proxy::parse_lifetime(w)
                        .map(|d| d.as_secs())
                        .map_err(|_| {
                            anyhow::anyhow!("wall time {w:?} is not valid; use e.g. 90m, 2h or 1d")
                        })
                })
                .transpose()?;
            let request = SubmitRequest {
                machine: args.machine.clone(),
                site: args.site,
                command: args.command,
                inputs: args.inputs,
                walltime_secs,
                cpus: args.cpus,
                memory_mib: args.memory.as_deref().map(memory_mib).transpose()?,
                keep_changes: args.keep_changes,
                as_run: None,
                relay: args.relay,
            };
            let follow = progress::Follow::start(ctx, Some(ctx.core.submit_task(&args.machine)));
            let submitted = ctx.core.submit(&request).await;
            follow.end().await;
            submitted_text(ctx, &submitted?)?;
        }
        RunCommand::Resume { run } => {
            // A run's id is `<machine>-<8 hex>`: its submit task is the machine's.
            let machine = run.rsplit_once('-').map_or(run.as_str(), |(m, _)| m);
            let follow = progress::Follow::start(ctx, Some(ctx.core.submit_task(machine)));
            let submitted = ctx.core.resume_run(&run).await;
            follow.end().await;
            submitted_text(ctx, &submitted?)?;
        }
        RunCommand::Shell {
            run,
            wait,
            via,
            command,
        } => {
            let within = seconds(&wait).ok_or_else(|| {
                anyhow::anyhow!("--wait {wait:?} is not valid; use e.g. 90s, 5m or 1h")
            })?;
            // For a person at a terminal; scripts see only the command's own output.
            if !ctx.json && std::io::stderr().is_terminal() {
                output::note(&format!(
                    "Waiting up to {} s for run {run}'s machine to answer…",
                    within.as_secs()
                ));
            }
            let session = ctx.core.run_shell_via(&run, within, via.as_deref()).await?;
            return crate::machine::in_session(session, &command).await;
        }
        RunCommand::List => {
            let runs = ctx.core.runs(true).await?;
            if ctx.json {
                output::json(&runs)?;
            } else if runs.is_empty() {
                output::text(
                    "No runs yet; send a machine with: sloop run submit MACHINE --site SITE\n",
                );
            } else {
                let mut out = format!(
                    "{:<28} {:<12} {:<10} {:<11} {:<5} {}\n",
                    "RUN", "MACHINE", "SITE", "STATE", "ACCEL", "CREATED"
                );
                for view in &runs {
                    let r = &view.record;
                    out.push_str(&format!(
                        "{:<28} {:<12} {:<10} {:<11} {:<5} {}\n",
                        r.id,
                        r.machine,
                        r.site,
                        phase(view),
                        r.accel.as_deref().unwrap_or("-"),
                        r.created
                    ));
                }
                output::text(&out);
            }
        }
        RunCommand::Info { run } => {
            let view = ctx.core.run_info(&run).await?;
            if ctx.json {
                output::json(&view)?;
            } else {
                output::text(&render_run(&view));
            }
        }
        RunCommand::Logs { run } => {
            let logs = ctx.core.run_logs(&run).await?;
            if ctx.json {
                output::json(&logs)?;
            } else {
                for (title, text) in [
                    ("VM job", &logs.job),
                    ("console", &logs.console),
                    ("command", &logs.command),
                ] {
                    output::text(&format!("==> {title} <==\n"));
                    output::text(text.as_deref().unwrap_or("(nothing yet)\n"));
                    if text.as_deref().is_some_and(|t| !t.ends_with('\n')) {
                        output::text("\n");
                    }
                }
            }
        }
        RunCommand::Cancel { run } => {
            let view = ctx.core.cancel_run(&run).await?;
            if ctx.json {
                output::json(&view)?;
            } else {
                output::text(&format!(
                    "Asked site {} to stop run {} (now {}).\n",
                    view.record.site,
                    view.record.id,
                    phase(&view)
                ));
            }
        }
        RunCommand::Renew { run } => {
            let view = ctx.core.renew_run(&run).await?;
            if ctx.json {
                output::json(&view)?;
            } else {
                output::text(&format!(
                    "Run {} has your current proxy (site {}, now {}).\n",
                    view.record.id,
                    view.record.site,
                    phase(&view)
                ));
            }
        }
        RunCommand::Clean { run } => {
            ctx.core.clean_run(&run).await?;
            if ctx.json {
                output::json(&serde_json::json!({ "cleaned": run }))?;
            } else {
                output::text(&format!("Removed run {run} at its site and here.\n"));
            }
        }
        RunCommand::Fetch {
            run,
            to,
            keep_changes,
        } => {
            let follow = progress::Follow::start(ctx, Some(TaskId::new("fetch", &run)));
            let fetched = ctx.core.fetch_run(&run, to.as_deref(), keep_changes).await;
            follow.end().await;
            let fetched = fetched?;
            if ctx.json {
                output::json(&fetched)?;
            } else {
                output::text(&format!(
                    "Fetched {} files ({}) of run {} into {}.\n",
                    fetched.files.len(),
                    output::bytes(fetched.bytes),
                    fetched.run,
                    fetched.dir
                ));
                if let Some(machine) = &fetched.changed_machine {
                    output::text(&format!(
                        "The run's changes are in the new machine {machine}: sloop machine start {machine}\n"
                    ));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `run submit` and `run resume` print.
fn submitted_text(ctx: &Context, view: &RunView) -> anyhow::Result<()> {
    if ctx.json {
        return output::json(view);
    }
    output::text(&format!(
        "Submitted {} to site {} as run {} (job {}).\nFollow it with: sloop run info {}\n",
        view.record.machine,
        view.record.site,
        view.record.id,
        view.record.job_id.as_deref().unwrap_or("-"),
        view.record.id
    ));
    Ok(())
}
