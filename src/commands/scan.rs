//! `hss-scand scan [--dry-run]`: submit what is due now.

use anyhow::Context as _;

use super::output::print;
use super::plan::print_table;
use crate::domain::Shutdown;
use crate::pipeline::plan;
use crate::pipeline::report::BatchState;
use crate::startup::{App, Startup};

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
    let result = scan_and_report(&app).await;
    app.store.close().await;
    result
}

/// Scans, prints one line per batch and a total, and fails unless every batch was accepted.
pub(super) async fn scan_and_report(app: &App) -> anyhow::Result<()> {
    let report = app
        .pipeline()
        .scan(&Shutdown::new())
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
