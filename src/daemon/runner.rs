//! Running one job: never twice at once, always recorded. A tick that finds the previous run
//! of the same job still going is skipped, recorded in `job_runs` and counted. Every run is a
//! row of `job_runs` and a tracing span with its run id, ends with one log line of its counts,
//! and refreshes the inventory gauges.

use std::sync::Arc;

use tracing::Instrument as _;

use super::{Daemon, JobEvent};
use crate::domain::{Job, JobOutcome};
use crate::startup::App;
use crate::store::{Fence, SyncOutcome};

impl Daemon {
    /// One run of `job`, unless the previous one is still going.
    pub(super) async fn run_job(self: Arc<Self>, job: Job, trigger: &'static str) {
        let run_id = format!("{:08x}", rand::random::<u32>());
        let span = tracing::info_span!("job", job = job.as_str(), run_id = %run_id, trigger);
        self.run_job_in_span(job, trigger, run_id)
            .instrument(span)
            .await;
    }

    async fn run_job_in_span(&self, job: Job, trigger: &'static str, run_id: String) {
        if self.shutdown.is_requested() {
            return;
        }
        let app = self.app();
        // Only the leader works; the others stand by for the lease.
        let Some(fence) = self.leadership.fence(self.clock.now_ms()) else {
            tracing::debug!("another replica holds the leader lease; this tick is not run here");
            return;
        };
        let Ok(_running) = self.running(job).try_lock() else {
            tracing::warn!("the previous run is still going; this tick is skipped");
            self.metrics
                .record_job(job, JobOutcome::Skipped, self.clock.now_ms());
            if let Err(err) = app.store.record_skipped_run(job, &run_id, trigger).await {
                tracing::error!(error = %err, "cannot record the skipped run");
            }
            self.tell(
                job,
                run_id,
                JobOutcome::Skipped,
                "skipped: the previous run is still going".into(),
            );
            return;
        };
        let row = match app.store.start_job_run(job, &run_id, trigger).await {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::error!(error = %err, "cannot record the start of the run; running it anyway");
                None
            }
        };
        let (outcome, summary) = match job {
            Job::Sync => self.sync(&app).await,
            Job::Scan => self.scan(&app, &fence).await,
        };
        if let Some(id) = row {
            let error = (outcome == JobOutcome::Failure).then_some(summary.as_str());
            if let Err(err) = app.store.finish_job_run(id, outcome, &summary, error).await {
                tracing::error!(error = %err, "cannot record the end of the run");
            }
        }
        self.metrics.record_job(job, outcome, self.clock.now_ms());
        match outcome {
            JobOutcome::Success => tracing::info!(outcome = outcome.as_str(), "{summary}"),
            _ => tracing::warn!(outcome = outcome.as_str(), "{summary}"),
        }
        self.refresh_status(&app).await;
        self.tell(job, run_id, outcome, summary);
    }

    fn tell(&self, job: Job, run_id: String, outcome: JobOutcome, summary: String) {
        if let Some(events) = &self.events {
            let _ = events.send(JobEvent {
                job,
                run_id,
                outcome,
                summary,
            });
        }
    }

    /// The sync job: every target, with metrics; succeeds when every listing completed.
    async fn sync(&self, app: &App) -> (JobOutcome, String) {
        let all = match app.pipeline().sync_all(&self.shutdown).await {
            Ok(all) => all,
            Err(err) => return (JobOutcome::Failure, format!("sync failed: {err}")),
        };
        self.metrics.record_sync(&all.reports, &all.took);
        for survey in &all.surveys {
            self.metrics.set_target_facts(&survey.facts);
        }
        for (target, followed) in &all.tasks {
            self.metrics.record_tasks(target, &followed.ended);
        }
        let finished = self.clock.now_ms();
        for target in &app.settings.targets {
            let mut reports = all
                .reports
                .iter()
                .filter(|r| r.target == target.name)
                .peekable();
            if reports.peek().is_some() && reports.all(|r| r.outcome == SyncOutcome::Complete) {
                self.metrics
                    .set_last_successful_sync(&target.name, finished);
            }
        }
        let outcome = if all.succeeded() {
            JobOutcome::Success
        } else {
            JobOutcome::Failure
        };
        (outcome, all.summary())
    }

    /// The scan job: plan and submit, with metrics; succeeds when every batch was accepted.
    async fn scan(&self, app: &App, fence: &Fence) -> (JobOutcome, String) {
        let report = match app.pipeline().scan(&self.shutdown, fence).await {
            Ok(report) => report,
            Err(err) => return (JobOutcome::Failure, format!("scan failed: {err}")),
        };
        self.metrics.record_scan(&report);
        let outcome = if report.succeeded() {
            JobOutcome::Success
        } else {
            JobOutcome::Failure
        };
        (outcome, report.summary())
    }
}
