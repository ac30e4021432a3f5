//! `hss-scand scan [--dry-run]`: submit what is due now.

use anyhow::Context as _;

use super::output::print;
use super::plan::print_table;
use crate::app::App;
use crate::config::Settings;
use crate::jobs;
use crate::store::now_ms;
use crate::submit::{self, BatchState, ScanReport};

pub(super) async fn run(settings: &Settings, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        // A dry run needs no credentials: it reads the database only.
        let store = crate::app::open_store(settings).await?;
        let plan = submit::plan(&store, &settings.targets, &settings.policy, now_ms()).await?;
        let printed = print_table(&store, &plan, settings.policy.batch_size).await;
        store.close().await;
        return printed;
    }
    let app = App::start(settings.clone(), None).await?;
    let result = scan_and_report(&app).await;
    app.store.close().await;
    result
}

/// Scans, prints one line per batch and a total, and fails unless every batch was accepted.
pub(super) async fn scan_and_report(app: &App) -> anyhow::Result<()> {
    let report = jobs::scan(app, &jobs::StopFlag::default())
        .await
        .context("scan")?;
    print(&summary(&report)).context("could not print the scan summary")?;
    if !report.succeeded() {
        anyhow::bail!(
            "not every due image was accepted: {} failed, {} with an unknown outcome{}",
            report.count(BatchState::Failed),
            report.count(BatchState::Unknown),
            report
                .stopped
                .as_deref()
                .map_or_else(String::new, |why| format!("; {why}"))
        );
    }
    Ok(())
}

fn summary(report: &ScanReport) -> String {
    let mut out = String::new();
    for b in &report.batches {
        out.push_str(&format!(
            "batch {} {} {}: {} images {}",
            b.batch_id,
            b.target,
            b.image_type,
            b.items,
            match b.state {
                BatchState::Sent => "accepted",
                BatchState::Failed => "REJECTED (due again)",
                BatchState::Unknown => "UNKNOWN (in flight until a sync tells)",
                BatchState::Split => "too large, split",
            }
        ));
        if let Some(e) = &b.error {
            out.push_str(&format!(": {e}"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "scan: {} due ({} before caps), {} submitted in {} accepted batches\n",
        report.due,
        report.due_before_caps,
        report.submitted(),
        report
            .batches
            .iter()
            .filter(|b| b.state == BatchState::Sent)
            .count(),
    ));
    out
}
