//! `job_runs`: the daemon's record of every scheduled run, skipped ticks included.

use super::{Context, Store, StoreError, now_ms};

impl Store {
    /// Records the start of a run; it stays `running` until [`Store::finish_job_run`].
    #[tracing::instrument(skip_all, err)]
    pub async fn start_job_run(
        &self,
        job: &str,
        run_id: &str,
        trigger: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO job_runs (job, run_id, trigger, owner, started_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(job)
        .bind(run_id)
        .bind(trigger)
        .bind(self.owner.as_str())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .context("record the start of a job run")?;
        tx.commit().await.context("record the start of a job run")?;
        Ok(id)
    }

    /// Records how a run ended (`success` or `failure`), with its one-line summary.
    #[tracing::instrument(skip_all, err, fields(run = id))]
    pub async fn finish_job_run(
        &self,
        id: i64,
        outcome: &str,
        summary: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE job_runs SET finished_at = ?, outcome = ?, summary = ?, error = ? WHERE id = ?",
        )
        .bind(now_ms())
        .bind(outcome)
        .bind(summary)
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("record the end of a job run")?;
        tx.commit().await.context("record the end of a job run")
    }

    /// Records a tick that found the previous run of `job` still going.
    #[tracing::instrument(skip_all, err)]
    pub async fn record_skipped_run(
        &self,
        job: &str,
        run_id: &str,
        trigger: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO job_runs (job, run_id, trigger, owner, started_at, finished_at, \
             outcome, summary) VALUES (?, ?, ?, ?, ?, ?, 'skipped', \
             'the previous run was still going')",
        )
        .bind(job)
        .bind(run_id)
        .bind(trigger)
        .bind(self.owner.as_str())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("record a skipped job run")?;
        tx.commit().await.context("record a skipped job run")
    }

    /// When `job` last finished successfully (ms), to restore the metric after a restart.
    pub async fn last_job_success(&self, job: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT MAX(finished_at) FROM job_runs WHERE job = ? AND outcome = 'success'",
        )
        .bind(job)
        .fetch_one(&self.reader)
        .await
        .context("read the last successful job run")
    }

    /// When the last complete sync of `target` finished (ms).
    pub async fn last_complete_sync(&self, target: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT MAX(finished_at) FROM sync_runs WHERE target = ? AND outcome = 'complete'",
        )
        .bind(target)
        .fetch_one(&self.reader)
        .await
        .context("read the last complete sync")
    }

    /// Marks job runs whose process died while they ran as `interrupted`.
    pub(super) async fn close_dead_job_runs(&self) -> Result<(), StoreError> {
        self.close_runs_of_dead_processes("job_runs", "the process stopped while this run went on")
            .await
    }
}
