//! `hss-scand sync`: refresh the inventory of every target.

use anyhow::Context as _;

use super::output::print;
use crate::app::App;
use crate::config::Settings;
use crate::jobs;
use crate::sync::SyncReport;

pub(super) async fn run(settings: &Settings) -> anyhow::Result<()> {
    let app = App::start(settings.clone(), None).await?;
    let result = sync_and_report(&app).await;
    app.store.close().await;
    result
}

/// Syncs, prints one line per target and type, and fails unless every sync completed.
pub(super) async fn sync_and_report(app: &App) -> anyhow::Result<()> {
    let reports = jobs::sync_all(app, &jobs::StopFlag::default())
        .await
        .context("sync")?
        .reports;
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
            "sync {} {} {}: {} pages, {} listed of {}, {} new, {} changed, {} restored, {} deleted",
            r.target,
            r.image_type,
            r.outcome.as_str(),
            c.pages,
            c.seen,
            c.total_num
                .map_or_else(|| "?".to_owned(), |t| t.to_string()),
            c.new,
            c.changed,
            c.restored,
            c.deleted,
        ));
        if c.unreadable_fields > 0 {
            out.push_str(&format!(", {} unreadable fields", c.unreadable_fields));
        }
        if let Some(rec) = &r.reconciled
            && rec.success + rec.failed + rec.lost + rec.vanished > 0
        {
            out.push_str(&format!(
                "; submissions: {} scanned, {} failed, {} never received, {} vanished",
                rec.success, rec.failed, rec.lost, rec.vanished
            ));
        }
        if let Some(e) = &r.error {
            out.push_str(&format!(" — ERROR: {e}"));
        }
        out.push('\n');
    }
    out
}
