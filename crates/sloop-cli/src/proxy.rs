//! `sloop proxy …`: see, make, attach and keep fresh the grid proxy.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use sloop_core::CoreError;
use sloop_core::event::Event;
use sloop_core::facade::Renewal;
use sloop_core::proxy::attach::{self, Sources};
use sloop_core::proxy::passphrase::PassphraseStore;
use sloop_core::proxy::{self, MakeRequest, ProxyError, ProxyInfo, UserCredentials};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;
use zeroize::Zeroizing;

use crate::{Context, output};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProxyCommand {
    /// What the proxy says: identity, VO, time left, chain. Exit status 1 when there is no valid
    /// proxy.
    Info {
        /// The proxy file (default: X509_USER_PROXY, else /tmp/x509up_u<uid>).
        #[arg(long)]
        path: Option<PathBuf>,
    },
    /// Make a new proxy from your grid certificate (RFC 3820, written 0600), and place it in
    /// every running attached machine.
    Init {
        /// How long it lasts: 12h, 90m, 2d or HH:MM (cut to your certificate's end).
        #[arg(long, default_value = "12h")]
        valid: String,
        /// A limited proxy: for data access, cannot start jobs.
        #[arg(long)]
        limited: bool,
        /// Ask this VO's VOMS server for attributes, through voms-proxy-init or arcproxy.
        #[arg(long)]
        voms: Option<String>,
        /// Read the key's passphrase from the first line of standard input (scripts).
        #[arg(long)]
        passphrase_stdin: bool,
        /// Remember the passphrase in the OS keyring (`sloop proxy forget` removes it).
        #[arg(long)]
        remember: bool,
        /// Your certificate (default: X509_USER_CERT, else ~/.globus/usercert.pem).
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Your key (default: X509_USER_KEY, else ~/.globus/userkey.pem).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Place the proxy in a machine at every start and renewal, starting now if it runs.
    Attach { name: String },
    /// Stop placing the proxy in a machine, and remove it from the machine if it runs.
    Detach { name: String },
    /// Forget the passphrase remembered in the OS keyring.
    Forget {
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Stay running and place the proxy in every running attached machine whenever it is
    /// renewed, by Sloop or any grid tool (the app does this by itself).
    Watch,
}

pub(crate) async fn run(ctx: &Context, command: ProxyCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProxyCommand::Info { path } => info(ctx, path),
        ProxyCommand::Init {
            valid,
            limited,
            voms,
            passphrase_stdin,
            remember,
            cert,
            key,
        } => {
            let defaults = UserCredentials::from_env();
            let credentials = UserCredentials {
                certificate: cert.unwrap_or(defaults.certificate),
                key: key.unwrap_or(defaults.key),
            };
            let mut request = MakeRequest::new(&credentials, proxy::default_path());
            request.lifetime = proxy::parse_lifetime(&valid)?;
            request.limited = limited;
            init(ctx, &request, voms.as_deref(), passphrase_stdin, remember).await
        }
        ProxyCommand::Attach { name } => {
            let conn = ctx.core.connection().await?;
            let placed =
                attach::attach(ctx.paths(), &conn, &name, &Sources::from_env(ctx.config())).await?;
            if ctx.json {
                output::json(&placed)?;
            } else {
                match placed {
                    Some(p) => output::text(&format!(
                        "machine {name}: proxy attached and placed at {} (until {})\n",
                        p.path, p.not_after
                    )),
                    None => output::text(&format!(
                        "machine {name}: proxy attached; it is placed at the next start\n"
                    )),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ProxyCommand::Detach { name } => {
            let conn = ctx.core.connection().await?;
            attach::detach(ctx.paths(), &conn, &name).await?;
            if ctx.json {
                output::json(&serde_json::json!({ "machine": name, "attached": false }))?;
            } else {
                output::text(&format!("machine {name}: proxy detached\n"));
            }
            Ok(ExitCode::SUCCESS)
        }
        ProxyCommand::Forget { key } => {
            let key = key.unwrap_or_else(|| UserCredentials::from_env().key);
            let store = PassphraseStore::new();
            let removed = tokio::task::spawn_blocking({
                let key = key.clone();
                move || store.forget(&key)
            })
            .await??;
            if ctx.json {
                output::json(&serde_json::json!({ "key": key, "forgotten": removed }))?;
            } else if removed {
                output::text(&format!("forgot the passphrase of {}\n", key.display()));
            } else {
                output::text(&format!("no passphrase remembered for {}\n", key.display()));
            }
            Ok(ExitCode::SUCCESS)
        }
        ProxyCommand::Watch => watch(ctx).await,
    }
}

fn info(ctx: &Context, path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let path = path.unwrap_or_else(proxy::default_path);
    let now = OffsetDateTime::now_utc();
    let Some(info) = proxy::inspect(&path, &ctx.config().ca_dir(), now)? else {
        anyhow::bail!(
            "no proxy at {}; make one with `sloop proxy init`",
            path.display()
        );
    };
    if ctx.json {
        output::json(&info)?;
    } else {
        output::text(&render(&info));
    }
    warn_if_expiring(ctx, &info);
    Ok(if info.seconds_left > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn warn_if_expiring(ctx: &Context, info: &ProxyInfo) {
    let warning = i64::from(ctx.config().proxy_warning_minutes()) * 60;
    if info.seconds_left < warning {
        output::warn(&expiry_warning(info.seconds_left, &info.not_after));
    }
}

fn expiry_warning(seconds_left: i64, not_after: &str) -> String {
    if seconds_left <= 0 {
        format!("the proxy expired at {not_after}; renew it with `sloop proxy init`")
    } else {
        format!(
            "the proxy expires in {}; renew it with `sloop proxy init`",
            duration(seconds_left)
        )
    }
}

/// The proxy in `arcproxy -I`'s shape, then one block per VO.
fn render(info: &ProxyInfo) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| out.push_str(&format!("{key:<11} {value}\n"));
    line("identity", &info.identity);
    line("subject", &info.subject);
    line("issuer", &info.issuer);
    line(
        "type",
        &format!(
            "{} {}{}",
            match info.kind {
                proxy::ProxyKind::Rfc3820 => "RFC 3820",
                proxy::ProxyKind::Gsi3 => "GSI-3 draft",
                proxy::ProxyKind::Legacy => "legacy (GSI-2)",
            },
            match info.policy {
                proxy::ProxyPolicy::Impersonation => "impersonation proxy",
                proxy::ProxyPolicy::Limited => "limited proxy",
                proxy::ProxyPolicy::Independent => "independent proxy",
                proxy::ProxyPolicy::AnyLanguage => "any-language proxy",
                proxy::ProxyPolicy::Restricted => "restricted proxy",
            },
            info.path_length
                .map(|n| format!(", path length {n}"))
                .unwrap_or_default()
        ),
    );
    line(
        "key",
        &format!("{} {} bits", info.key_algorithm, info.key_bits),
    );
    line("signature", &info.signature_algorithm);
    line("path", &info.path.display().to_string());
    line(
        "time left",
        &if info.seconds_left > 0 {
            format!("{} (until {})", duration(info.seconds_left), info.not_after)
        } else {
            format!("expired at {}", info.not_after)
        },
    );
    line(
        "chain",
        &if info.chain.verified {
            format!("verified against {}", info.chain.anchors.display())
        } else {
            format!(
                "NOT verified: {}",
                info.chain.reason.as_deref().unwrap_or("unknown reason")
            )
        },
    );
    for voms in &info.voms {
        out.push_str(&format!("\nVO {}\n", voms.vo));
        for fqan in &voms.fqans {
            out.push_str(&format!("{:<11} {fqan}\n", "attribute"));
        }
        out.push_str(&format!("{:<11} {}\n", "issuer", voms.issuer));
        if let Some(uri) = &voms.uri {
            out.push_str(&format!("{:<11} {uri}\n", "uri"));
        }
        out.push_str(&format!(
            "{:<11} {}\n",
            "time left",
            if voms.seconds_left > 0 {
                duration(voms.seconds_left)
            } else {
                format!("expired at {}", voms.not_after)
            }
        ));
    }
    if let Some(e) = &info.voms_error {
        out.push_str(&format!("\nVOMS attributes unreadable: {e}\n"));
    }
    out
}

/// `11h 59m`, `4m 10s`.
fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    if h >= 24 {
        format!("{}d {}h", h / 24, h % 24)
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {s:02}s")
    }
}

async fn init(
    ctx: &Context,
    request: &MakeRequest,
    voms: Option<&str>,
    passphrase_stdin: bool,
    remember: bool,
) -> anyhow::Result<ExitCode> {
    let key = request.key.clone();
    // The passphrase comes from standard input when asked; else the core tries the keyring,
    // and the user is prompted only when that gives none, or one that no longer opens the key.
    let mut typed = if passphrase_stdin && proxy::needs_passphrase(&key)? {
        Some(read_stdin_line()?)
    } else {
        None
    };
    let renewed = loop {
        let renewal = Renewal {
            request: request.clone(),
            vo: voms.map(str::to_string),
            passphrase: typed.clone(),
            remember,
            place: true,
        };
        match ctx.core.renew_proxy(renewal).await {
            Err(CoreError::Proxy(ProxyError::PassphraseNeeded { .. })) if typed.is_none() => {
                typed = Some(prompt(&key)?);
            }
            Err(CoreError::Proxy(ProxyError::WrongPassphrase { .. }))
                if typed.is_none() && std::io::stdin().is_terminal() =>
            {
                output::warn("the remembered passphrase no longer opens your key");
                typed = Some(prompt(&key)?);
            }
            other => break other?,
        }
    };
    match &renewed.remembered {
        Some(Ok(backend)) if !ctx.json => {
            output::text(&format!("passphrase remembered in the {backend}\n"));
        }
        Some(Err(e)) => output::warn(&format!(
            "the passphrase was not remembered: {}",
            sloop_core::error_chain(e)
        )),
        _ => {}
    }
    for failure in &renewed.placed.failed {
        output::warn(&format!("proxy not placed in {failure}"));
    }
    let made = &renewed.proxy;
    let placed = &renewed.placed.placed;
    if ctx.json {
        output::json(&serde_json::json!({ "proxy": made, "placed": placed }))?;
    } else {
        output::text(&format!(
            "proxy for {}{} written to {}, valid until {}\n",
            made.identity,
            made.vo().map(|vo| format!(" ({vo})")).unwrap_or_default(),
            made.path.display(),
            made.not_after
        ));
        for p in placed {
            output::text(&format!("placed in machine {} at {}\n", p.machine, p.path));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the core's proxy watch, the same the app runs, and prints what it reports: each
/// placement of a renewal, and the warning when the proxy nears its end. With `--json`, one
/// object per line (JSON Lines): a placement (machine, until), or the `proxyExpiring` event.
async fn watch(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut events = ctx.core.subscribe();
    let watching = ctx.core.watch_proxy();
    tokio::pin!(watching);
    if !ctx.json {
        output::text(&format!(
            "watching {}; renewals are placed in running attached machines (Ctrl-C ends)\n",
            proxy::default_path().display()
        ));
    }
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            failed = &mut watching => {
                let Err(e) = failed;
                return Err(e.into());
            }
            event = events.recv() => event,
        };
        match event {
            Ok(Event::ProxyPlaced { placed, failed }) => {
                for failure in &failed {
                    output::warn(&format!("proxy not placed in {failure}"));
                }
                for p in placed {
                    if ctx.json {
                        output::json_line(&p)?;
                    } else {
                        output::text(&format!(
                            "placed the renewed proxy in machine {} (until {})\n",
                            p.machine, p.not_after
                        ));
                    }
                }
            }
            Ok(event @ Event::ProxyExpiring { .. }) if ctx.json => output::json_line(&event)?,
            Ok(Event::ProxyExpiring {
                seconds_left,
                not_after,
            }) => output::warn(&expiry_warning(seconds_left, &not_after)),
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn read_stdin_line() -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the passphrase from standard input")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    Ok(trimmed)
}

fn prompt(key: &Path) -> anyhow::Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "your grid key {} needs its passphrase; give it with --passphrase-stdin",
            key.display()
        );
    }
    let passphrase = rpassword::prompt_password(format!("Passphrase for {}: ", key.display()))
        .context("cannot read the passphrase")?;
    Ok(Zeroizing::new(passphrase))
}
