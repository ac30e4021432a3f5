//! `sync_runs` and `job_runs`: one row per sync of a target and image type, and one per run
//! of a daemon job (skipped ticks included). Rows are written `running` first and closed at
//! the end, so a run whose process died is visible and closed at the next open.

use async_trait::async_trait;

use super::{Context, SqliteBackend};
use crate::domain::{ImageType, Job, JobOutcome};
use crate::store::rows::{JobRunRow, SyncRunRow, TargetFactsRow, to_json};
use crate::store::{JobRun, RunLog, StoreError, SyncOutcome, SyncRun, SyncRunCounts, TargetFacts};

#[async_trait]
impl RunLog for SqliteBackend {
    #[tracing::instrument(skip_all, err)]
    async fn start_sync_run(
        &self,
        target: &str,
        image_type: &ImageType,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO sync_runs (target, image_type, owner, started_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(target)
        .bind(image_type.as_str())
        .bind(self.owner.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .context("record the start of a sync")?;
        tx.commit().await.context("record the start of a sync")?;
        Ok(id)
    }

    #[tracing::instrument(skip_all, err, fields(run = id))]
    async fn finish_sync_run(
        &self,
        id: i64,
        outcome: SyncOutcome,
        counts: &SyncRunCounts,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE sync_runs SET finished_at = ?, outcome = ?, pages = ?, total_num = ?, \
             seen = ?, new = ?, changed = ?, restored = ?, deleted = ?, held = ?, \
             unreadable_fields = ?, error = ? WHERE id = ?",
        )
        .bind(now)
        .bind(outcome.as_str())
        .bind(counts.pages)
        .bind(counts.total_num)
        .bind(counts.seen)
        .bind(counts.new)
        .bind(counts.changed)
        .bind(counts.restored)
        .bind(counts.deleted)
        .bind(counts.held)
        .bind(counts.unreadable_fields)
        .bind(error)
        .bind(id);
        self.write_one(query, "record the end of a sync").await
    }

    #[tracing::instrument(skip_all, err)]
    async fn recent_sync_runs(&self, limit: i64) -> Result<Vec<SyncRun>, StoreError> {
        let rows: Vec<SyncRunRow> = sqlx::query_as(
            "SELECT id, target, image_type, started_at, finished_at, outcome, pages, total_num, \
             seen, new, changed, restored, deleted, held, unreadable_fields, error, listing, \
             missed FROM sync_runs ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .context("read the latest sync runs")?;
        rows.into_iter().map(SyncRun::try_from).collect()
    }

    async fn last_complete_sync(&self, target: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT MAX(finished_at) FROM sync_runs WHERE target = ? AND outcome = 'complete'",
        )
        .bind(target)
        .fetch_one(&self.reader)
        .await
        .context("read the last complete sync")
    }

    #[tracing::instrument(skip_all, err)]
    async fn start_job_run(
        &self,
        job: Job,
        run_id: &str,
        trigger: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO job_runs (job, run_id, trigger, owner, started_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(job.as_str())
        .bind(run_id)
        .bind(trigger)
        .bind(self.owner.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .context("record the start of a job run")?;
        tx.commit().await.context("record the start of a job run")?;
        Ok(id)
    }

    #[tracing::instrument(skip_all, err, fields(run = id))]
    async fn finish_job_run(
        &self,
        id: i64,
        outcome: JobOutcome,
        summary: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE job_runs SET finished_at = ?, outcome = ?, summary = ?, error = ? WHERE id = ?",
        )
        .bind(now)
        .bind(outcome.as_str())
        .bind(summary)
        .bind(error)
        .bind(id);
        self.write_one(query, "record the end of a job run").await
    }

    #[tracing::instrument(skip_all, err)]
    async fn record_skipped_run(
        &self,
        job: Job,
        run_id: &str,
        trigger: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "INSERT INTO job_runs (job, run_id, trigger, owner, started_at, finished_at, \
             outcome, summary) VALUES (?, ?, ?, ?, ?, ?, ?, \
             'the previous run was still going')",
        )
        .bind(job.as_str())
        .bind(run_id)
        .bind(trigger)
        .bind(self.owner.as_str())
        .bind(now)
        .bind(now)
        .bind(JobOutcome::Skipped.as_str());
        self.write_one(query, "record a skipped job run").await
    }

    async fn last_job_success(&self, job: Job) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT MAX(finished_at) FROM job_runs WHERE job = ? AND outcome = ?")
            .bind(job.as_str())
            .bind(JobOutcome::Success.as_str())
            .fetch_one(&self.reader)
            .await
            .context("read the last successful job run")
    }

    async fn recent_job_runs(&self, limit: i64) -> Result<Vec<JobRun>, StoreError> {
        let rows: Vec<JobRunRow> = sqlx::query_as(
            "SELECT id, job, run_id, trigger, started_at, finished_at, outcome, summary, error \
             FROM job_runs ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .context("read the latest job runs")?;
        Ok(rows.into_iter().map(JobRun::from).collect())
    }

    async fn record_target_facts(&self, facts: &TargetFacts) -> Result<(), StoreError> {
        let query = sqlx::query(
            "INSERT INTO target_facts (target, api, fell_back_at, native_policy, billing, \
             checked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET \
             api = excluded.api, fell_back_at = excluded.fell_back_at, \
             native_policy = excluded.native_policy, billing = excluded.billing, \
             checked_at = excluded.checked_at",
        )
        .bind(&facts.target)
        .bind(&facts.api)
        .bind(facts.fell_back_at)
        .bind(to_json(&facts.native_scan_policy)?)
        .bind(to_json(&facts.pay_per_scan)?)
        .bind(facts.checked_at);
        self.write_one(query, "record what a target's HSS project said")
            .await
    }

    async fn target_facts(&self) -> Result<Vec<TargetFacts>, StoreError> {
        let rows: Vec<TargetFactsRow> = sqlx::query_as(
            "SELECT target, api, fell_back_at, native_policy, billing, checked_at \
             FROM target_facts ORDER BY target",
        )
        .fetch_all(&self.reader)
        .await
        .context("read what the targets' HSS projects said")?;
        rows.into_iter().map(TargetFacts::try_from).collect()
    }
}
