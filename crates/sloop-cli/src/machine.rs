//! `sloop machine …`, `sloop shell`, `sloop ssh-config`, `sloop launch`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use sloop_core::TaskId;
use sloop_core::facade::LaunchRequest;
use sloop_core::machine::manifest::Resources;
use sloop_core::machine::{self, CreateRequest, MachineSummary};

use crate::{Context, MachineCommand, output, progress};

/// vCPUs, memory and disk, with the defaults a new machine gets.
#[derive(Debug, Clone, clap::Args)]
pub struct ResourceArgs {
    /// Virtual CPUs.
    #[arg(long, default_value_t = Resources::default().vcpus)]
    vcpus: u32,
    /// Memory in MiB.
    #[arg(long, default_value_t = Resources::default().memory_mib)]
    memory: u32,
    /// Disk size in GiB (at least the image's own size).
    #[arg(long, default_value_t = Resources::default().disk_gib)]
    disk: u32,
}

impl ResourceArgs {
    fn resources(&self) -> Resources {
        Resources {
            vcpus: self.vcpus,
            memory_mib: self.memory,
            disk_gib: self.disk,
        }
    }
}

fn print_summary(ctx: &Context, summary: &MachineSummary, text: &str) -> anyhow::Result<()> {
    if ctx.json {
        output::json(summary)?;
    } else {
        output::text(text);
        if !summary.image_certified {
            output::warn(&format!(
                "machine {}'s image {} is no longer certified by a subscribed list",
                summary.name, summary.image
            ));
        }
    }
    Ok(())
}

pub async fn run(ctx: &Context, command: MachineCommand) -> anyhow::Result<ExitCode> {
    if let MachineCommand::List = command {
        return crate::machine_list(ctx).await;
    }
    match command {
        MachineCommand::List => {}
        MachineCommand::Create {
            name,
            image,
            resources,
            workdir,
        } => {
            let request = CreateRequest {
                name,
                image,
                resources: resources.resources(),
                work_dir: workdir,
                overlay: None,
                origin: None,
            };
            let follow = progress::Follow::start(ctx, None);
            let created = ctx.core.create(&request).await;
            follow.end().await;
            let summary = created?;
            print_summary(
                ctx,
                &summary,
                &format!(
                    "Created machine {} from {}. Start it with: sloop machine start {}\n",
                    summary.name, summary.image, summary.name
                ),
            )?;
        }
        MachineCommand::Start {
            name,
            no_wait,
            timeout,
        } => {
            let wait = (!no_wait).then(|| Duration::from_secs(timeout));
            let follow = progress::Follow::start(ctx, None);
            let started = ctx.core.start(&name, wait).await;
            follow.end().await;
            let summary = started?;
            let how = if no_wait {
                "started"
            } else {
                "running; SSH answers with its pinned key"
            };
            print_summary(
                ctx,
                &summary,
                &format!(
                    "Machine {} is {how} (127.0.0.1:{}). Shell: sloop shell {}\n",
                    summary.name, summary.ssh_port, summary.name
                ),
            )?;
        }
        MachineCommand::Stop {
            name,
            force,
            timeout,
        } => {
            let summary = if force {
                ctx.core.force_off(&name).await?
            } else {
                ctx.core.stop(&name, Duration::from_secs(timeout)).await?
            };
            print_summary(
                ctx,
                &summary,
                &format!("Machine {} is stopped.\n", summary.name),
            )?;
        }
        MachineCommand::Restart { name } => {
            let follow = progress::Follow::start(ctx, None);
            let restarted = ctx.core.restart(&name).await;
            follow.end().await;
            let summary = restarted?;
            print_summary(
                ctx,
                &summary,
                &format!("Machine {} restarted.\n", summary.name),
            )?;
        }
        MachineCommand::Delete { name, yes } => {
            if !yes && !confirm_delete(&name)? {
                output::text("Nothing deleted.\n");
                return Ok(ExitCode::from(1));
            }
            ctx.core.delete(&name).await?;
            if ctx.json {
                output::json(&serde_json::json!({ "deleted": name }))?;
            } else {
                output::text(&format!("Deleted machine {name} and its overlay.\n"));
            }
        }
        MachineCommand::Info { name } => {
            let parsed = name.parse()?;
            let manifest = machine::load(ctx.paths(), &parsed)?;
            let conn = ctx.core.connection().await?;
            let summary = machine::summary(ctx.paths(), ctx.config(), &conn, &manifest).await?;
            if ctx.json {
                output::json(&serde_json::json!({ "summary": summary, "manifest": manifest }))?;
            } else {
                output::text(&format!(
                    "{}\n  state      {:?}\n  image      {} (SHA-512 {}…){}\n  resources  {} vCPU, {} MiB, {} GiB disk\n  disks      {}\n  ssh        127.0.0.1:{} as {}\n  workdir    {}\n  folder     {}\n  created    {}\n",
                    summary.name,
                    summary.state,
                    summary.image,
                    &manifest.base.sha512[..16],
                    if summary.image_certified {
                        ""
                    } else {
                        "  NOT CERTIFIED any more"
                    },
                    manifest.resources.vcpus,
                    manifest.resources.memory_mib,
                    manifest.resources.disk_gib,
                    match manifest.layout {
                        machine::DiskLayout::Overlay =>
                            "an overlay on the image (its changes only)",
                        machine::DiskLayout::LiveCd =>
                            "boots from the ISO image (read-only CD); its own disk keeps the changes",
                    },
                    manifest.ssh_port,
                    manifest.user,
                    summary.work_dir.as_deref().unwrap_or("-"),
                    ctx.paths().machine_dir(&name).display(),
                    manifest.created
                ));
            }
        }
        MachineCommand::Console { name } => {
            let text = machine::console_tail(ctx.paths(), &name, 64 * 1024)?;
            output::text(&text);
        }
        MachineCommand::Export(args) => return crate::bundle::export(ctx, args).await,
        MachineCommand::Import(args) => return crate::bundle::import(ctx, args).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; refuses when there is none (scripts pass --yes).
fn confirm_delete(name: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("deleting {name} removes its overlay (your changes); pass --yes to confirm");
    }
    let mut stderr = std::io::stderr();
    write!(
        stderr,
        "Delete machine {name} and its overlay (all changes made inside it)? Type its name to confirm: "
    )?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == name)
}

pub async fn shell(ctx: &Context, name: &str, command: &[String]) -> anyhow::Result<ExitCode> {
    let session = ctx.core.shell(name).await.with_context(|| {
        format!("cannot reach machine {name}; is it running? (sloop machine start {name})")
    })?;
    in_session(session, command).await
}

/// Runs `command` in `session`, or an interactive shell without one; the exit status is the
/// command's (255 when it was killed, as ssh says).
pub async fn in_session(
    session: sloop_core::ssh::Session,
    command: &[String],
) -> anyhow::Result<ExitCode> {
    if command.is_empty() {
        return interactive(session).await;
    }
    let line = remote_line(command)?;
    let status = session
        .exec_streaming(
            &line,
            stdin_chunks(),
            &mut tokio::io::stdout(),
            &mut tokio::io::stderr(),
        )
        .await?;
    let _ = session.close().await;
    Ok(match status {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(255),
    })
}

/// This process's standard input, chunk by chunk as it comes, for a command in a machine. Read
/// on a thread of its own: a read still waiting when the command ends does not keep Sloop from
/// exiting (tokio's reader would).
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    use std::io::Read as _;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buffer[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// An interactive login shell on a PTY, with this terminal in raw mode while it runs.
async fn interactive(session: sloop_core::ssh::Session) -> anyhow::Result<ExitCode> {
    use sloop_core::ssh::{TerminalOutput, TerminalSize};
    use tokio::io::AsyncReadExt as _;

    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "an interactive shell needs a terminal; to run a command: sloop shell NAME -- COMMAND"
        );
    }
    let size = || {
        let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
        TerminalSize {
            cols: u32::from(cols),
            rows: u32::from(rows),
        }
    };
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let closed_tx = std::sync::Mutex::new(Some(closed_tx));
    let terminal = session
        .open_terminal(size(), move |event| match event {
            TerminalOutput::Data(bytes) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&bytes);
                let _ = out.flush();
            }
            TerminalOutput::Closed { status } => {
                if let Some(tx) = closed_tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    let _ = tx.send(status);
                }
            }
        })
        .await?;
    crossterm::terminal::enable_raw_mode()?;
    // Raw mode is undone however this ends.
    struct Cooked;
    impl Drop for Cooked {
        fn drop(&mut self) {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
    let _cooked = Cooked;
    let keys = terminal.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buffer = vec![0u8; 4096];
        while let Ok(n) = stdin.read(&mut buffer).await {
            if n == 0 || !keys.write(buffer[..n].to_vec()).await {
                break;
            }
        }
    });
    let resizes = terminal.clone();
    tokio::spawn(async move {
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            if !resizes.resize(size()).await {
                break;
            }
        }
    });
    let status = closed_rx.await.ok().flatten();
    Ok(match status {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(255),
    })
}

/// One word for a POSIX shell: as is when safe, else in single quotes.
/// The command's words as one line for the machine's POSIX shell, each word kept whole.
fn remote_line(words: &[String]) -> anyhow::Result<String> {
    shlex::try_join(words.iter().map(String::as_str))
        .context("a word of the command holds a NUL byte, which no shell can pass")
}

pub async fn ssh_config(ctx: &Context) -> anyhow::Result<ExitCode> {
    let (path, text) = ctx.core.ssh_config().await?;
    if ctx.json {
        output::json(&serde_json::json!({ "path": path, "config": text }))?;
    } else {
        output::text(&text);
        output::text(&format!(
            "\n# Written to {0}. Add this line to the top of ~/.ssh/config once:\n#   Include {0}\n# then: ssh sloop-NAME (a machine here) or ssh sloop-run-RUN (an interactive run at its site)\n",
            path.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn launch(
    ctx: &Context,
    image: &str,
    name: &str,
    workdir: Option<PathBuf>,
    resources: &ResourceArgs,
) -> anyhow::Result<ExitCode> {
    let request = LaunchRequest {
        image: image.to_string(),
        name: name.to_string(),
        resources: resources.resources(),
        work_dir: workdir,
    };
    let follow = progress::Follow::start(ctx, Some(TaskId::new("launch", name)));
    let launched = ctx.core.launch(&request).await;
    follow.end().await;
    let summary = launched?;
    print_summary(
        ctx,
        &summary,
        &format!(
            "Machine {} is running ({}). Shell: sloop shell {}\n",
            summary.name, summary.image, summary.name
        ),
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_reach_the_remote_shell_whole() {
        let words: Vec<String> = ["uname", "-a", "a b", "it's", "", "$HOME", "*", "x;y"]
            .map(String::from)
            .to_vec();
        let line = remote_line(&words).unwrap();
        assert!(line.starts_with("uname -a "), "{line}");
        assert_eq!(shlex::split(&line), Some(words));
    }
}
