//! `scan_batches` and `scan_items`: the audit trail of every scan call, and the per-image
//! bookkeeping the policy reads (`submission_state`: `in_flight`, `last_submitted_at`,
//! `failed_submissions`, `last_item_id`, `submitted_digest_hash`). The protocol is SQLite's (see `sqlite/submissions.rs`);
//! what differs is how exclusion is had. SQLite has one writer at a time; here the
//! transaction that records a batch locks the lease row (`FOR UPDATE`), so no other process
//! can take the lease or record a batch until it commits, and locks the inventory rows of the
//! images it claims (which, unlike their state rows, always exist), in id order, so that nothing moves their last submission between the check and
//! the write.

use std::collections::HashMap;

use async_trait::async_trait;

use super::leases::check_fence;
use super::{Context, PgBackend};
use crate::domain::{BatchFailure, DueReason, ImageType, ScanTask};
use crate::store::rows::{BatchRow, OpenItemRow};
use crate::store::{
    Batch, BatchStatus, Claim, Claimed, DueImage, Fence, ItemOutcome, NewBatch, OpenItem, OpenTask,
    StoreError, Submissions, digest_hash,
};

#[async_trait]
impl Submissions for PgBackend {
    /// Images submitted since `since` (ms) in batches HSS may have taken (`sent` or
    /// `pending`): what the daily budget has used.
    #[tracing::instrument(skip_all, err)]
    async fn submitted_since(&self, since: i64) -> Result<u64, StoreError> {
        let used: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(items), 0)::BIGINT FROM scan_batches \
             WHERE created_at >= $1 AND status <> 'failed'",
        )
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .context("count today's submissions")?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    /// Claims the images of `items` that nobody submitted since they were read, and commits
    /// them as a `pending` batch with its items, in flight, before the call is made. Earlier
    /// open items of the same images are closed as superseded.
    #[tracing::instrument(skip_all, err, fields(target = batch.target, items = items.len()))]
    async fn record_pending_batch(
        &self,
        batch: &NewBatch<'_>,
        items: &[DueImage],
        fence: &Fence,
        now: i64,
    ) -> Result<Claim, StoreError> {
        let mut tx = self.pool.begin().await.context("record a pending batch")?;
        // The lease row stays locked until the commit: no other process can take the lease
        // or record a batch between this check and the batch that claims the images.
        if let Err(lease) = check_fence(&mut tx, fence, now).await? {
            return Ok(Claim::Fenced(lease));
        }
        let ids: Vec<i64> = items.iter().map(|d| d.planned.row_id).collect();
        // Locked, so that a sync closing their items (or a failed batch releasing them)
        // cannot move their last submission between this check and the write below; in id
        // order, so that the lock waits of two such transactions form a queue. (Should they
        // still form a cycle, PostgreSQL aborts one of them, and its job fails and is run
        // again; nothing is recorded twice.)
        let current: HashMap<i64, Option<i64>> = sqlx::query_as(
            "SELECT i.id, s.last_submitted_at FROM images i \
             LEFT JOIN submission_state s ON s.image_row_id = i.id \
             WHERE i.target = $1 AND i.id = ANY($2) AND i.deleted_at IS NULL \
             ORDER BY i.id FOR UPDATE OF i",
        )
        .bind(batch.target)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .context("check that the images are still unclaimed")?
        .into_iter()
        .collect();
        // An image whose last submission is no longer the one it was planned after was
        // claimed by another process (or deleted) meanwhile: it is left out, not sent twice.
        let (items, left_out): (Vec<&DueImage>, Vec<&DueImage>) = items
            .iter()
            .partition(|d| current.get(&d.planned.row_id) == Some(&d.planned.last_submitted_at()));
        if items.is_empty() {
            return Ok(Claim::NothingLeft);
        }
        let batch_id: i64 = sqlx::query_scalar(
            "INSERT INTO scan_batches (target, image_type, enterprise_project_id, owner, \
             parent_id, created_at, status, items, api, lease_term) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9) RETURNING id",
        )
        .bind(batch.target)
        .bind(batch.image_type.as_str())
        .bind(batch.enterprise_project_id)
        .bind(self.owner.as_str())
        .bind(batch.parent_id)
        .bind(now)
        .bind(items.len() as i64)
        .bind(batch.api)
        .bind(fence.term)
        .fetch_one(&mut *tx)
        .await
        .context("record a pending batch")?;
        let claimed: Vec<i64> = items.iter().map(|d| d.planned.row_id).collect();
        sqlx::query(
            "UPDATE scan_items SET outcome = 'superseded', finished_at = $1 \
             WHERE outcome IS NULL AND image_row_id = ANY($2)",
        )
        .bind(now)
        .bind(&claimed)
        .execute(&mut *tx)
        .await
        .context("close superseded submissions")?;
        let mut c = ItemColumns::default();
        items.iter().for_each(|d| c.push(d));
        // Rows go in in the order UNNEST gives them, the request's order, as their ids.
        sqlx::query(
            "INSERT INTO scan_items (batch_id, image_row_id, reason, rule, priority, \
             status_before, scan_time_before, submitted_before, image_digest, digest_hash, \
             digest_hash_before) \
             SELECT $1, u.image_row_id, u.reason, u.rule, u.priority, u.status_before, \
             u.scan_time_before, u.submitted_before, u.image_digest, u.digest_hash, \
             u.digest_hash_before \
             FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::TEXT[], \
             $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::BIGINT[], $11::BIGINT[]) \
             WITH ORDINALITY AS u(image_row_id, reason, rule, priority, status_before, \
             scan_time_before, submitted_before, image_digest, digest_hash, digest_hash_before, \
             n) ORDER BY u.n",
        )
        .bind(batch_id)
        .bind(&claimed)
        .bind(c.reason)
        .bind(c.rule)
        .bind(c.priority)
        .bind(c.status_before)
        .bind(c.scan_time_before)
        .bind(c.submitted_before)
        .bind(c.image_digest)
        .bind(c.digest_hash)
        .bind(c.digest_hash_before)
        .execute(&mut *tx)
        .await
        .context("record pending items")?;
        // Every claimed image in flight, submitted now by this batch's item with its digest:
        // one statement, in row order (the order the images' rows are locked in).
        sqlx::query(
            "INSERT INTO submission_state (image_row_id, last_submitted_at, last_item_id, \
             in_flight, submitted_digest_hash) \
             SELECT image_row_id, $1, id, TRUE, digest_hash FROM scan_items \
             WHERE batch_id = $2 ORDER BY image_row_id \
             ON CONFLICT (image_row_id) DO UPDATE SET \
             last_submitted_at = excluded.last_submitted_at, \
             last_item_id = excluded.last_item_id, in_flight = TRUE, \
             submitted_digest_hash = excluded.submitted_digest_hash",
        )
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await
        .context("mark images in flight")?;
        // The failures in a row so far were of the content before the change: the new
        // content starts with a clean count.
        sqlx::query(
            "UPDATE submission_state SET failed_submissions = 0 WHERE image_row_id IN \
             (SELECT image_row_id FROM scan_items WHERE batch_id = $1 AND reason = $2)",
        )
        .bind(batch_id)
        .bind(DueReason::Changed.as_str())
        .execute(&mut *tx)
        .await
        .context("restart the failure count of changed images")?;
        tx.commit().await.context("record a pending batch")?;
        let left_out = left_out.iter().map(|d| d.planned.row_id).collect();
        Ok(Claim::Claimed(Claimed { batch_id, left_out }))
    }

    /// HSS accepted the batch.
    #[tracing::instrument(skip_all, err, fields(batch = batch_id))]
    async fn mark_batch_sent(
        &self,
        batch_id: i64,
        task_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE scan_batches SET status = 'sent', answered_at = $1, task_id = $2 \
             WHERE id = $3",
        )
        .bind(now)
        .bind(task_id)
        .bind(batch_id)
        .execute(&self.pool)
        .await
        .context("mark a batch sent")?;
        Ok(())
    }

    async fn submitted_total(&self, target: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(items), 0)::BIGINT FROM scan_batches \
             WHERE target = $1 AND status <> 'failed'",
        )
        .bind(target)
        .fetch_one(&self.pool)
        .await
        .context("count a target's submissions")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The call ended without telling whether HSS took the batch: it stays `pending`, its
    /// images stay in flight, and the next syncs decide.
    #[tracing::instrument(skip_all, err, fields(batch = batch_id))]
    async fn mark_batch_unknown(
        &self,
        batch_id: i64,
        failure: &BatchFailure,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.context("record a batch's answer")?;
        record_answer(&mut tx, batch_id, BatchStatus::Pending, failure, now).await?;
        tx.commit().await.context("record a batch's answer")
    }

    /// HSS certainly did not take the batch: its items are rejected and their images go back
    /// to how they were before, so that the policy sees them due again. One transaction with
    /// the answer (SQLite takes two; the end state is the same).
    #[tracing::instrument(skip_all, err, fields(batch = batch_id))]
    async fn mark_batch_failed(
        &self,
        batch_id: i64,
        failure: &BatchFailure,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context("release the images of a failed batch")?;
        record_answer(&mut tx, batch_id, BatchStatus::Failed, failure, now).await?;
        // Only images whose last submission is this batch's go back; one submitted again
        // since keeps its newer submission.
        sqlx::query(
            "UPDATE submission_state st SET in_flight = FALSE, \
             last_submitted_at = s.submitted_before, \
             submitted_digest_hash = s.digest_hash_before \
             FROM scan_items s \
             WHERE s.batch_id = $1 AND st.image_row_id = s.image_row_id \
             AND st.last_item_id = s.id",
        )
        .bind(batch_id)
        .execute(&mut *tx)
        .await
        .context("release the images of a failed batch")?;
        sqlx::query(
            "UPDATE scan_items SET outcome = 'rejected', finished_at = $1 \
             WHERE batch_id = $2 AND outcome IS NULL",
        )
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await
        .context("reject the items of a failed batch")?;
        tx.commit()
            .await
            .context("release the images of a failed batch")
    }

    /// The open items of a target and type, with their image's current state.
    #[tracing::instrument(skip_all, err, fields(target, image_type = %image_type))]
    async fn open_items(
        &self,
        target: &str,
        image_type: &ImageType,
        after: (i64, i64),
        limit: i64,
    ) -> Result<Vec<OpenItem>, StoreError> {
        let rows: Vec<OpenItemRow> = sqlx::query_as(
            "SELECT s.id AS item_id, s.image_row_id, s.batch_id, b.status AS batch_status, \
             b.created_at AS submitted_at, s.status_before, s.scan_time_before, \
             i.scan_status, i.latest_scan_time, i.deleted_at IS NOT NULL AS deleted, \
             b.lease_term AS batch_term \
             FROM scan_items s JOIN scan_batches b ON b.id = s.batch_id \
             JOIN images i ON i.id = s.image_row_id \
             WHERE s.outcome IS NULL AND b.status <> 'failed' \
             AND b.target = $1 AND b.image_type = $2 AND (s.image_row_id, s.id) > ($3, $4) \
             ORDER BY s.image_row_id, s.id LIMIT $5",
        )
        .bind(target)
        .bind(image_type.as_str())
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("read open submissions")?;
        rows.into_iter().map(OpenItemRow::into_item).collect()
    }

    /// Closes items with their outcomes, in one transaction, and moves their images on:
    /// out of flight; a failed scan adds to the image's consecutive failures and a success
    /// clears them; a lost submission gives the image back its earlier submission time, so
    /// that it is due again under its old reason. An image whose last submission is another
    /// item is left as it is.
    #[tracing::instrument(skip_all, err, fields(items = outcomes.len()))]
    async fn close_items(
        &self,
        outcomes: &[(OpenItem, ItemOutcome)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut sorted: Vec<&(OpenItem, ItemOutcome)> = outcomes.iter().collect();
        sorted.sort_by_key(|(item, _)| (item.image_row_id, item.item_id));
        let item_ids: Vec<i64> = sorted.iter().map(|(item, _)| item.item_id).collect();
        let image_ids: Vec<i64> = sorted.iter().map(|(item, _)| item.image_row_id).collect();
        let outcome_texts: Vec<&str> = sorted.iter().map(|(_, o)| o.as_str()).collect();
        let mut tx = self.pool.begin().await.context("close submissions")?;
        sqlx::query(
            "UPDATE scan_items SET outcome = o.outcome, finished_at = $1 \
             FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS o(id, outcome) WHERE scan_items.id = o.id",
        )
        .bind(now)
        .bind(&item_ids)
        .bind(&outcome_texts)
        .execute(&mut *tx)
        .await
        .context("close a submission")?;
        sqlx::query(
            "UPDATE submission_state st SET in_flight = FALSE, \
             failed_submissions = CASE o.outcome \
                 WHEN 'success' THEN 0 \
                 WHEN 'failed' THEN st.failed_submissions + 1 \
                 ELSE st.failed_submissions END, \
             last_submitted_at = CASE o.outcome \
                 WHEN 'lost' THEN s.submitted_before \
                 ELSE st.last_submitted_at END, \
             submitted_digest_hash = CASE o.outcome \
                 WHEN 'lost' THEN s.digest_hash_before \
                 ELSE st.submitted_digest_hash END \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[]) AS o(image_row_id, item_id, outcome) \
             JOIN scan_items s ON s.id = o.item_id \
             WHERE st.image_row_id = o.image_row_id AND st.last_item_id = o.item_id",
        )
        .bind(&image_ids)
        .bind(&item_ids)
        .bind(&outcome_texts)
        .execute(&mut *tx)
        .await
        .context("move a submitted image on")?;
        tx.commit().await.context("close submissions")
    }

    /// The latest `limit` batches, newest first.
    #[tracing::instrument(skip_all, err)]
    async fn recent_batches(&self, limit: i64) -> Result<Vec<Batch>, StoreError> {
        let rows: Vec<BatchRow> = sqlx::query_as(
            "SELECT id, target, image_type, parent_id, created_at, answered_at, status, items, \
             http_status, error_code, request_id, error, api, task_id, task_progress, \
             task_succeeded, task_failed FROM scan_batches ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("read the latest batches")?;
        Ok(rows.into_iter().map(Batch::from).collect())
    }

    async fn open_tasks(&self, target: &str) -> Result<Vec<OpenTask>, StoreError> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, task_id, created_at FROM scan_batches \
             WHERE target = $1 AND api = 'current' AND task_ended_at IS NULL \
             AND task_id IS NOT NULL ORDER BY id",
        )
        .bind(target)
        .fetch_all(&self.pool)
        .await
        .context("read the open scan tasks")?;
        Ok(rows
            .into_iter()
            .map(|(batch_id, task_id, created_at)| OpenTask {
                batch_id,
                task_id,
                created_at,
            })
            .collect())
    }

    #[tracing::instrument(skip_all, err, fields(batch = batch_id))]
    async fn record_task(
        &self,
        batch_id: i64,
        task: &ScanTask,
        now: i64,
    ) -> Result<(), StoreError> {
        // The last reason given for a record wins, as when SQLite writes them one by one.
        let mut reasons: HashMap<i64, &str> = HashMap::new();
        for (record_id, reason) in &task.failed_images {
            if let Some(record_id) = record_id {
                reasons.insert(*record_id, reason);
            }
        }
        let (record_ids, reasons): (Vec<i64>, Vec<&str>) = reasons.into_iter().unzip();
        let mut tx = self
            .pool
            .begin()
            .await
            .context("record a scan task's progress")?;
        sqlx::query(
            "UPDATE scan_batches SET task_progress = $1, task_succeeded = $2, task_failed = $3, \
             task_checked_at = $4, task_ended_at = $5 WHERE id = $6",
        )
        .bind(task.progress)
        .bind(task.succeeded)
        .bind(task.failed)
        .bind(now)
        .bind(task.outcome().map(|_| now))
        .bind(batch_id)
        .execute(&mut *tx)
        .await
        .context("record a scan task's progress")?;
        if !record_ids.is_empty() {
            sqlx::query(
                "UPDATE scan_items SET task_failure = f.reason \
                 FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS f(record_id, reason), images i, \
                 scan_batches b \
                 WHERE scan_items.batch_id = $1 AND b.id = $1 \
                 AND i.id = scan_items.image_row_id AND i.target = b.target \
                 AND i.hss_record_id = f.record_id",
            )
            .bind(batch_id)
            .bind(&record_ids)
            .bind(&reasons)
            .execute(&mut *tx)
            .await
            .context("record an image a scan task failed")?;
        }
        tx.commit().await.context("record a scan task's progress")
    }
}

/// Records the answer (or the error) of a batch's call.
async fn record_answer(
    conn: &mut sqlx::PgConnection,
    batch_id: i64,
    status: BatchStatus,
    failure: &BatchFailure,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE scan_batches SET status = $1, answered_at = $2, http_status = $3, \
         error_code = $4, request_id = $5, error = $6 WHERE id = $7",
    )
    .bind(status.as_str())
    .bind(now)
    .bind(failure.http_status.map(i64::from))
    .bind(&failure.error_code)
    .bind(&failure.request_id)
    .bind(&failure.message)
    .bind(batch_id)
    .execute(conn)
    .await
    .context("record a batch's answer")?;
    Ok(())
}

/// One array per column of a batch's items, in the order of the insert's `UNNEST`.
#[derive(Default)]
struct ItemColumns {
    reason: Vec<&'static str>,
    rule: Vec<Option<i64>>,
    priority: Vec<i64>,
    status_before: Vec<String>,
    scan_time_before: Vec<Option<i64>>,
    submitted_before: Vec<Option<i64>>,
    image_digest: Vec<String>,
    digest_hash: Vec<Option<i64>>,
    digest_hash_before: Vec<Option<i64>>,
}

impl ItemColumns {
    fn push(&mut self, item: &DueImage) {
        let due = &item.planned.due;
        self.reason.push(due.reason.as_str());
        self.rule.push(due.rule.map(|r| r as i64));
        self.priority.push(due.priority);
        self.status_before
            .push(item.scan_status.as_str().to_owned());
        self.scan_time_before.push(item.latest_scan_time);
        self.submitted_before.push(item.last_submitted_at);
        self.image_digest.push(item.identity.image_digest.clone());
        self.digest_hash
            .push(digest_hash(&item.identity.image_digest));
        self.digest_hash_before.push(item.submitted_digest_hash);
    }
}
