//! `sloop tutorial`: trainers make, mirror and check tutorial files; students open and reset
//! them.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sloop_core::TaskId;
use sloop_core::facade::OpenedTutorial;
use sloop_core::tutorial::{CheckItem, CreateRequest, TutorialView};

use crate::{Context, output, progress};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TutorialCommand {
    /// Open a tutorial file (path or URL): verify it, fetch what is missing (its mirror first),
    /// make and start the machine with the material at /analysis. Opened before: the same
    /// machine again.
    Open {
        file: String,
        /// Opened here before from another version of the file: make its machine anew from
        /// this one (your work directory is moved aside).
        #[arg(long)]
        replace: bool,
        /// Make the machine but do not start it (a classroom prepared ahead).
        #[arg(long)]
        no_start: bool,
    },
    /// The tutorials opened here.
    List,
    /// Bring a tutorial's machine back to its start; your work directory is moved aside, not
    /// deleted. Asks first.
    Reset {
        name: String,
        /// Do not ask (scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Make a tutorial from your prepared machine: a signed bundle of its changes, the material
    /// packed, and the tutorial file (FILE.sloop-tutorial, with FILE.sloop and
    /// FILE-material.tar beside it).
    Create {
        /// The machine you prepared.
        #[arg(long)]
        machine: String,
        /// The tutorial file to write (never overwritten).
        #[arg(short, long)]
        output: PathBuf,
        /// A folder copied into every student's work directory (/analysis).
        #[arg(long)]
        material: Option<PathBuf>,
        #[arg(long)]
        title: String,
        /// A Markdown file shown beside the terminal.
        #[arg(long)]
        welcome: Option<PathBuf>,
        /// The command or file students start with.
        #[arg(long)]
        start: Option<String>,
        /// The students' machine name (default: your machine's).
        #[arg(long)]
        name: Option<String>,
        /// Stop the machine first when it runs.
        #[arg(long)]
        stop: bool,
    },
    /// Write an offline classroom mirror (a USB stick, a share): the tutorial file, the signed
    /// list, the image, the bundle and the material, each found beside the file.
    Mirror { file: String, dir: PathBuf },
    /// Check that everything the tutorial names is reachable and matches its pin (exit 1 when
    /// something does not).
    Check { file: String },
}

pub(crate) async fn run(ctx: &Context, command: TutorialCommand) -> anyhow::Result<ExitCode> {
    match command {
        TutorialCommand::Open {
            file,
            replace,
            no_start,
        } => {
            let task = ctx.core.tutorial_task(&file).await?;
            let follow = progress::Follow::start(ctx, Some(task));
            let opened = ctx.core.open_tutorial(&file, replace, !no_start).await;
            follow.end().await;
            let opened = opened?;
            if ctx.json {
                output::json(&opened)?;
            } else {
                output::text(&render_opened(&opened));
            }
        }
        TutorialCommand::List => {
            let all = ctx.core.tutorials().await?;
            if ctx.json {
                output::json(&all)?;
            } else if all.is_empty() {
                output::text("No tutorials yet: open one with sloop tutorial open FILE.\n");
            } else {
                output::text(&render_list(&all));
            }
        }
        TutorialCommand::Reset { name, yes } => {
            if !yes && !confirm_reset(&name)? {
                output::text("Nothing was reset.\n");
                return Ok(ExitCode::from(1));
            }
            let task = TaskId::from(sloop_core::tutorial::task_name(&name).as_str());
            let follow = progress::Follow::start(ctx, Some(task));
            let reset = ctx.core.reset_tutorial(&name).await;
            follow.end().await;
            let reset = reset?;
            if ctx.json {
                output::json(&reset)?;
            } else {
                output::text(&render_opened(&reset));
            }
        }
        TutorialCommand::Create {
            machine,
            output: file,
            material,
            title,
            welcome,
            start,
            name,
            stop,
        } => {
            let welcome = match welcome {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read the welcome text {}", path.display()))?,
                None => String::new(),
            };
            let request = CreateRequest {
                machine,
                output: file,
                material,
                name,
                title,
                welcome,
                start,
            };
            let follow = progress::Follow::start(ctx, None);
            let created = ctx.core.create_tutorial(&request, stop).await;
            follow.end().await;
            let created = created?;
            if ctx.json {
                output::json(&created)?;
            } else {
                output::text(&format!(
                    "Wrote tutorial {}\n  bundle    {} (signed by {})\n  material  {}\nMake an offline copy with: sloop tutorial mirror {} DIR\n",
                    created.file,
                    created.bundle,
                    created.signed_by,
                    created.material.as_deref().unwrap_or("none"),
                    created.file
                ));
            }
        }
        TutorialCommand::Mirror { file, dir } => {
            let follow = progress::Follow::start(ctx, None);
            let mirrored = ctx.core.mirror_tutorial(&file, &dir).await;
            follow.end().await;
            let mirrored = mirrored?;
            if ctx.json {
                output::json(&serde_json::json!({ "file": mirrored }))?;
            } else {
                output::text(&format!(
                    "Wrote the mirror {}; students open {}\n",
                    dir.display(),
                    mirrored.display()
                ));
            }
        }
        TutorialCommand::Check { file } => {
            let follow = progress::Follow::start(ctx, None);
            let items = ctx.core.check_tutorial(&file).await;
            follow.end().await;
            let items = items?;
            if ctx.json {
                output::json(&items)?;
            } else {
                output::text(&render_check(&items));
            }
            if items.iter().any(|i| !i.ok) {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render_opened(opened: &OpenedTutorial) -> String {
    let t = &opened.tutorial;
    let mut out = format!(
        "{} {} (machine {}, SSH on 127.0.0.1:{}).\n  work directory  {} (at /analysis)\n",
        if opened.resumed {
            "Resumed tutorial"
        } else {
            "Tutorial ready:"
        },
        t.title,
        opened.machine.name,
        opened.machine.ssh_port,
        t.work_dir
    );
    if let Some(aside) = &opened.set_aside {
        out.push_str(&format!("  your old work   {aside}\n"));
    }
    if let Some(trainer) = &t.trainer {
        out.push_str(&format!("  prepared by     {trainer}\n"));
    }
    if !t.welcome.is_empty() {
        out.push('\n');
        out.push_str(t.welcome.trim_end());
        out.push_str("\n\n");
    }
    if let Some(start) = &t.start {
        out.push_str(&format!("Start with: {start}\n"));
    }
    out.push_str(&format!(
        "Open a shell: sloop shell {}\n",
        opened.machine.name
    ));
    out
}

fn render_list(all: &[TutorialView]) -> String {
    let mut out = format!("{:<24} {:<40} {}\n", "NAME", "TITLE", "WORK DIRECTORY");
    for t in all {
        out.push_str(&format!("{:<24} {:<40} {}\n", t.name, t.title, t.work_dir));
    }
    out
}

fn render_check(items: &[CheckItem]) -> String {
    let mut out = String::new();
    for item in items {
        out.push_str(&format!(
            "{}  {:<10} {}\n      {}\n",
            if item.ok { "ok  " } else { "FAIL" },
            item.what,
            item.location,
            item.detail
        ));
    }
    out.push_str(if items.iter().all(|i| i.ok) {
        "Everything the tutorial names is reachable and matches.\n"
    } else {
        "Not everything holds: see FAIL above.\n"
    });
    out
}

/// Asks on the terminal; refuses when there is none (scripts pass --yes).
fn confirm_reset(name: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "resetting {name} discards the changes inside its machine (your work directory is kept aside); pass --yes to confirm"
        );
    }
    let mut stderr = std::io::stderr();
    write!(
        stderr,
        "Reset tutorial {name} to its start? The changes inside its machine are discarded; your work directory is moved aside. [y/N] "
    )?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
