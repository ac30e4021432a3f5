//! `hss-scand scan [--dry-run]`: submit what is due now.

use anyhow::Context as _;

use super::output::print;
use super::plan::print_table;
use crate::domain::Shutdown;
use crate::leader::{RunLease, replica_id};
use crate::pipeline::plan;
use crate::pipeline::report::BatchState;
use crate::startup::{App, Startup};
use crate::store::Fence;

pub(super) async fn run(startup: Startup, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        // A dry run needs no credentials: it reads the database only.
        let settings = startup.settings();
        let store = startup.open_store().await?;
        let now = store.clock().now_ms();
        let plan = plan::plan(&store, &settings.targets, &settings.policy, now).await?;
        let printed = print_table(&store, &plan, settings.policy.batch_size).await;
        store.close().await;
        return printed;
    }
    let app = startup.build().await?;
    let result = match take_lease(&app).await {
        Ok(lease) => {
            let scanned = scan_and_report(&app, lease.fence()).await;
            lease.release().await;
            scanned
        }
        Err(err) => Err(err),
    };
    app.store.close().await;
    result
}

/// The leader lease for this run, or why not: a daemon replica holds it.
pub(super) async fn take_lease(app: &App) -> anyhow::Result<RunLease> {
    RunLease::take(&app.store, &replica_id(), &app.settings.daemon)
        .await
        .context("nothing was submitted")
}

/// Scans, prints one line per batch and a total, and fails unless every batch was accepted.
pub(super) async fn scan_and_report(app: &App, fence: &Fence) -> anyhow::Result<()> {
    let report = app
        .pipeline()
        .scan(&Shutdown::new(), fence)
        .await
        .context("scan")?;
    let mut text: String = report.batches.iter().map(|b| format!("{b}\n")).collect();
    text.push_str(&report.total_line());
    text.push('\n');
    print(&text).context("could not print the scan summary")?;
    if !report.succeeded() {
        anyhow::bail!(
            "not every due image was accepted: {} failed, {} with an unknown outcome{}",
            report.images_in(BatchState::Failed),
            report.images_in(BatchState::Unknown),
            report
                .stopped
                .as_deref()
                .map_or_else(String::new, |why| format!("; {why}"))
        );
    }
    Ok(())
}
