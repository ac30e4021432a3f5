//! The two jobs the daemon schedules and the CLI runs once: sync every target, and scan (plan,
//! then submit). Each returns a report; printing and scheduling are the caller's business.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::store::{StoreError, now_ms};
use crate::submit::{self, ScanReport};
use crate::sync::{self, SyncOptions, SyncReport};

/// Asks running jobs to stop at their next committed step (between two targets of a sync,
/// between two batches of a scan), so that a shutdown leaves nothing half-recorded.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a sync of every target did.
#[derive(Debug, Clone, Default)]
pub struct SyncAllReport {
    /// One per target and image type.
    pub reports: Vec<SyncReport>,
    /// How long each target took, all its types together.
    pub took: Vec<(String, Duration)>,
    /// Targets left out because a stop was asked for.
    pub stopped_before: Vec<String>,
}

/// Syncs every target, one after the other. A target whose listing fails does not stop the
/// others; only a database failure does.
pub async fn sync_all(app: &App, stop: &StopFlag) -> Result<SyncAllReport, StoreError> {
    let options = SyncOptions {
        page_size: app.settings.hss.page_size,
        submit_grace: app.settings.policy.submit_grace,
    };
    app.store.bulk_writes(true).await?;
    let mut all = SyncAllReport::default();
    let mut result = Ok(());
    for tc in &app.clients {
        if stop.is_stopped() {
            all.stopped_before.push(tc.target.name.clone());
            continue;
        }
        let started = Instant::now();
        match sync::sync_target(&app.store, &tc.client, &tc.target, options).await {
            Ok(reports) => all.reports.extend(reports),
            Err(err) => {
                result = Err(err);
                break;
            }
        }
        all.took.push((tc.target.name.clone(), started.elapsed()));
    }
    // The sync's own error, if any, is the one worth reporting.
    let restored = app.store.bulk_writes(false).await;
    result.and(restored).map(|()| all)
}

/// Plans from the database and submits the due images.
pub async fn scan(app: &App, stop: &StopFlag) -> Result<ScanReport, StoreError> {
    let policy = &app.settings.policy;
    let plan = submit::plan(&app.store, &app.targets(), policy, now_ms()).await?;
    let report = submit::submit(&app.store, &app.clients, plan, policy.batch_size, stop).await?;
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
