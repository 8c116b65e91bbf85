//! `sloop image …`

use std::process::ExitCode;

use sloop_core::image::base::BaseState;
use sloop_core::image::{ImageView, LocalState};

use crate::{Context, ImageCommand, output, progress};

pub async fn run(ctx: &Context, command: ImageCommand) -> anyhow::Result<ExitCode> {
    match command {
        ImageCommand::List => {
            let images = ctx.core.images().await?;
            if ctx.json {
                output::json(&images)?;
            } else if images.is_empty() {
                output::text(
                    "No images: add a catalog first (`sloop catalog add URL`, or `--demo`).\n",
                );
            } else {
                output::text(&render(&images));
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Pull { image: query } => {
            let follow = progress::Follow::start(ctx, Some(ctx.core.pull_task(&query).await?));
            let result = ctx.core.pull(&query).await;
            follow.end().await;
            let view = result?;
            if ctx.json {
                output::json(&view)?;
            } else if let LocalState::Stored { path } = &view.local {
                output::text(&format!(
                    "{} {} is verified (size and SHA-512 match the signed list) and stored at {path}\n",
                    view.title, view.version
                ));
                if let BaseState::Ready { derived, .. } = &view.base {
                    output::text(&format!("Its runnable base is ready: {derived}.\n"));
                }
            }
            // Stored, but no machine can be made from it: a failure for scripts too.
            if let BaseState::Refused { reason } = &view.base {
                anyhow::bail!(
                    "image {} is refused before any machine is made on it: {reason}",
                    view.title
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Rm { image: query } => {
            let view = ctx.core.remove_image(&query).await?;
            if ctx.json {
                output::json(&view)?;
            } else {
                output::text(&format!(
                    "Removed {} {} from the store.\n",
                    view.title, view.version
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn render(images: &[ImageView]) -> String {
    let mut out = format!(
        "{:<38} {:<28} {:>9} {:<14} {:<10} {}\n",
        "IDENTIFIER", "TITLE", "SIZE", "CERTIFIED", "HERE", "CATALOG"
    );
    for image in images {
        let here = match &image.local {
            LocalState::Absent => "-".to_string(),
            LocalState::Partial { bytes } => format!("{}%", bytes * 100 / image.size.max(1)),
            LocalState::Stored { .. } => match &image.base {
                BaseState::Ready { .. } => "ready",
                BaseState::Preparing => "preparing",
                BaseState::Refused { .. } => "REFUSED",
                BaseState::Unprepared | BaseState::Absent => "stored",
            }
            .to_string(),
        };
        out.push_str(&format!(
            "{:<38} {:<28} {:>9} {:<14} {:<10} {}\n",
            image.identifier,
            truncate(&format!("{} {}", image.title, image.version), 28),
            output::bytes(image.size),
            if image.certified { "yes" } else { "NO" },
            here,
            image.catalog.as_deref().unwrap_or("-")
        ));
        if let Some(problem) = &image.problem {
            out.push_str(&format!("{:<38} not certified: {problem}\n", ""));
        }
        if let BaseState::Refused { reason } = &image.base {
            out.push_str(&format!("{:<38} not run: {reason}\n", ""));
        }
    }
    out
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(width - 1).collect();
        short.push('…');
        short
    }
}
