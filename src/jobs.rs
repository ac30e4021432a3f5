//! The two jobs the daemon schedules and the CLI runs once: sync every target, and scan (plan,
//! then submit). Each returns a report; printing and scheduling are the caller's business.

use crate::app::App;
use crate::store::{StoreError, now_ms};
use crate::submit::{self, ScanReport};
use crate::sync::{self, SyncOptions, SyncReport};

/// Syncs every target, one after the other. A target whose listing fails does not stop the
/// others; only a database failure does.
pub async fn sync_all(app: &App) -> Result<Vec<SyncReport>, StoreError> {
    let options = SyncOptions {
        page_size: app.settings.hss.page_size,
        submit_grace: app.settings.policy.submit_grace,
    };
    let mut reports = Vec::new();
    for tc in &app.clients {
        reports.extend(sync::sync_target(&app.store, &tc.client, &tc.target, options).await?);
    }
    Ok(reports)
}

/// Plans from the database and submits the due images.
pub async fn scan(app: &App) -> Result<ScanReport, StoreError> {
    let policy = &app.settings.policy;
    let plan = submit::plan(&app.store, &app.targets(), policy, now_ms()).await?;
    let report = submit::submit(&app.store, &app.clients, plan, policy.batch_size).await?;
    tracing::info!(
        due = report.due,
        due_before_caps = report.due_before_caps,
        batches = report.batches.len(),
        submitted = report.submitted(),
        stopped = report.stopped.as_deref().unwrap_or(""),
        "scan finished"
    );
    Ok(report)
}
