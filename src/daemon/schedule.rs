//! The cron side of the daemon: tokio-cron-scheduler runs the sync and scan jobs on their
//! `[schedule]` expressions (6 fields, UTC) and a heartbeat that proves its loop is alive.

use std::sync::Arc;

use anyhow::Context as _;
use tokio_cron_scheduler::{Job as CronJob, JobScheduler};
use uuid::Uuid;

use super::Daemon;
use crate::config::ScheduleSettings;
use crate::domain::Job;

/// The running scheduler and the ids of the jobs a reload replaces.
pub struct Schedules {
    scheduler: JobScheduler,
    sync: Uuid,
    scan: Uuid,
}

/// A cron job that runs `job` on `daemon`. The run is spawned, so a long run never holds
/// up the scheduler; overlapping runs are refused by the daemon itself.
fn cron_job(daemon: &Arc<Daemon>, job: Job, expression: &str) -> anyhow::Result<CronJob> {
    let daemon = Arc::clone(daemon);
    CronJob::new_async(expression, move |_, _| {
        let daemon = Arc::clone(&daemon);
        Box::pin(async move {
            tokio::spawn(daemon.run_job(job, "schedule"));
        })
    })
    .with_context(|| {
        format!(
            "schedule.{}: {expression:?} is not accepted by the scheduler",
            job.as_str()
        )
    })
}

impl Schedules {
    /// Starts the scheduler with the heartbeat and both jobs.
    pub async fn start(
        daemon: &Arc<Daemon>,
        schedule: &ScheduleSettings,
        heartbeat: &str,
    ) -> anyhow::Result<Schedules> {
        let scheduler = JobScheduler::new()
            .await
            .context("cannot create the job scheduler")?;
        let beat = Arc::clone(daemon);
        scheduler
            .add(
                CronJob::new(heartbeat, move |_, _| beat.heartbeat())
                    .context("the heartbeat schedule")?,
            )
            .await
            .context("cannot schedule the heartbeat")?;
        let sync = scheduler
            .add(cron_job(daemon, Job::Sync, &schedule.sync)?)
            .await
            .context("cannot schedule the sync job")?;
        let scan = scheduler
            .add(cron_job(daemon, Job::Scan, &schedule.scan)?)
            .await
            .context("cannot schedule the scan job")?;
        scheduler
            .start()
            .await
            .context("cannot start the job scheduler")?;
        Ok(Schedules {
            scheduler,
            sync,
            scan,
        })
    }

    /// Puts the jobs on new expressions. Both are built before either is swapped, so a
    /// refused expression leaves the old schedules running.
    pub async fn replace(
        &mut self,
        daemon: &Arc<Daemon>,
        schedule: &ScheduleSettings,
    ) -> anyhow::Result<()> {
        let sync = cron_job(daemon, Job::Sync, &schedule.sync)?;
        let scan = cron_job(daemon, Job::Scan, &schedule.scan)?;
        for old in [self.sync, self.scan] {
            self.scheduler
                .remove(&old)
                .await
                .context("cannot unschedule a job")?;
        }
        self.sync = self
            .scheduler
            .add(sync)
            .await
            .context("cannot schedule the sync job")?;
        self.scan = self
            .scheduler
            .add(scan)
            .await
            .context("cannot schedule the scan job")?;
        Ok(())
    }

    /// Stops every schedule: no new run starts.
    pub async fn shutdown(&mut self) {
        if let Err(err) = self.scheduler.shutdown().await {
            tracing::warn!(error = %err, "the job scheduler did not stop cleanly");
        }
    }
}
