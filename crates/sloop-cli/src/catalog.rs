//! `sloop catalog …`

use std::process::ExitCode;

use sloop_core::catalog::{self, AddRequest, CatalogState, CatalogView};
use time::OffsetDateTime;

use crate::{CatalogCommand, Context, output};

pub async fn run(ctx: &Context, command: CatalogCommand) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    match command {
        CatalogCommand::Add {
            source,
            name,
            identifier,
            endorser_dn,
            endorser_ca,
            ca_dir,
            demo,
            image,
        } => {
            let view = if demo {
                let image = match image {
                    Some(image) => image,
                    None => catalog::demo::default_image()?,
                };
                let live = catalog::demo::default_live();
                catalog::demo::ensure(ctx.paths(), ctx.config(), &image, live.as_deref(), now)
                    .await?
            } else {
                let request = AddRequest {
                    source: source.unwrap_or_default(),
                    name,
                    identifier,
                    endorser_dn,
                    endorser_ca,
                    anchors: ca_dir,
                };
                catalog::add(ctx.paths(), ctx.config(), &request, now).await?
            };
            if ctx.json {
                output::json(&view)?;
            } else if demo {
                output::text(&format!(
                    "Demo catalog ready: {} image(s), endorsed by {} (trusted for this catalog only), valid until {}.\n",
                    view.images.len(),
                    view.endorser.dn,
                    view.expires
                ));
            } else {
                output::text(&format!(
                    "Subscribed to {} as {:?}: {} image(s), endorsed by {} (CA {}), valid until {}. Identifier and endorser are pinned.\n",
                    view.title,
                    view.name,
                    view.images.len(),
                    view.endorser.dn,
                    view.endorser.ca,
                    view.expires
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::List => {
            let views = ctx.core.catalogs().await?;
            if ctx.json {
                output::json(&views)?;
            } else if views.is_empty() {
                output::text(
                    "No catalogs yet. Add one with `sloop catalog add URL`, or `sloop catalog add --demo`.\n",
                );
            } else {
                output::text(&render(&views));
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Refresh { name } => {
            let names = match name {
                Some(name) => vec![name],
                None => catalog::subscriptions(ctx.paths())?
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect(),
            };
            let mut views = Vec::new();
            let mut failed = false;
            for name in names {
                match catalog::refresh(ctx.paths(), ctx.config(), &name, now).await {
                    Ok(view) => views.push(view),
                    Err(e) => {
                        failed = true;
                        output::warn(&format!("{name}: {:#}", anyhow::Error::from(e)));
                        if let Ok(view) = catalog::load(ctx.paths(), ctx.config(), &name, now) {
                            views.push(view);
                        }
                    }
                }
            }
            if ctx.json {
                output::json(&views)?;
            } else {
                output::text(&render(&views));
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        CatalogCommand::Remove { name } => {
            catalog::remove(ctx.paths(), &name)?;
            if ctx.json {
                output::json(&serde_json::json!({ "removed": name }))?;
            } else {
                output::text(&format!(
                    "Removed catalog {name:?}. Images you downloaded stay in the store; `sloop image rm` removes them.\n"
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn render(views: &[CatalogView]) -> String {
    let mut out = String::new();
    for view in views {
        let state = match view.state {
            CatalogState::Verified => "verified",
            CatalogState::Expired => "EXPIRED",
            CatalogState::Gone => "GONE",
            CatalogState::Refused => "REFUSED",
        };
        out.push_str(&format!("{} ({}) {state}\n", view.name, view.title));
        out.push_str(&format!("  source    {}\n", view.source));
        out.push_str(&format!("  endorser  {}\n", view.endorser.dn));
        out.push_str(&format!("  CA        {}\n", view.endorser.ca));
        if !view.created.is_empty() {
            out.push_str(&format!(
                "  valid     {} to {}\n",
                view.created, view.expires
            ));
        }
        if let Some(problem) = &view.problem {
            out.push_str(&format!("  problem   {problem}\n"));
        }
        for dropped in &view.dropped {
            out.push_str(&format!("  dropped   {dropped}\n"));
        }
        for image in &view.images {
            out.push_str(&format!(
                "  - {} {} ({}, {})  {}\n",
                image.title,
                image.version,
                output::bytes(image.size),
                if image.certified {
                    "certified"
                } else {
                    "not certified"
                },
                image.identifier
            ));
        }
    }
    out
}
