//! `hss-scand sync`: refresh the inventory of every target.

use anyhow::Context as _;

use super::output::print;
use crate::domain::Shutdown;
use crate::startup::{App, Startup};

pub(super) async fn run(startup: Startup) -> anyhow::Result<()> {
    let app = startup.build().await?;
    let result = sync_and_report(&app).await;
    app.store.close().await;
    result
}

/// Syncs, prints one line per target and type, and fails unless every sync completed.
pub(super) async fn sync_and_report(app: &App) -> anyhow::Result<()> {
    let reports = app
        .pipeline()
        .sync_all(&Shutdown::new())
        .await
        .context("sync")?
        .reports;
    let text: String = reports.iter().map(|r| format!("{r}\n")).collect();
    print(&text).context("could not print the sync summary")?;
    let failed = reports.iter().filter(|r| !r.succeeded()).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} syncs did not complete (see the lines above)",
            reports.len()
        );
    }
    Ok(())
}
