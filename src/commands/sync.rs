//! `hss-scand sync`: refresh the inventory of every target, one after the other.

use anyhow::Context as _;

use super::output::print;
use crate::app;
use crate::config::Settings;
use crate::sync::{self, SyncReport};

pub(super) async fn run(settings: &Settings) -> anyhow::Result<()> {
    let credentials = app::credentials(&settings.credentials)?;
    let store = app::open_store(settings).await?;
    let clients = app::target_clients(settings, &credentials, None)?;
    let mut reports = Vec::new();
    for tc in &clients {
        let done = sync::sync_target(&store, &tc.client, &tc.target, settings.hss.page_size)
            .await
            .with_context(|| format!("sync of target {}", tc.target.name))?;
        reports.extend(done);
    }
    store.close().await;
    print(&summary(&reports)).context("could not print the sync summary")?;
    let failed = reports.iter().filter(|r| !r.succeeded()).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} syncs did not complete (see the lines above)",
            reports.len()
        );
    }
    Ok(())
}

fn summary(reports: &[SyncReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let c = &r.counts;
        out.push_str(&format!(
            "{} {} {}: {} pages, {} listed of {}, {} new, {} changed, {} restored, {} deleted{}{}\n",
            r.target,
            r.image_type,
            r.outcome.as_str(),
            c.pages,
            c.seen,
            c.total_num.map_or_else(|| "?".to_owned(), |t| t.to_string()),
            c.new,
            c.changed,
            c.restored,
            c.deleted,
            if c.unreadable_fields > 0 {
                format!(", {} unreadable fields", c.unreadable_fields)
            } else {
                String::new()
            },
            r.error
                .as_deref()
                .map_or_else(String::new, |e| format!(" — ERROR: {e}")),
        ));
    }
    out
}
