//! `scan_batches` and `scan_items`: the audit trail of every scan call, and the per-image
//! bookkeeping the policy reads (`submission_state`: `in_flight`, `last_submitted_at`,
//! `failed_submissions`, `last_item_id`, `submitted_digest_hash`).
//!
//! The protocol: a batch and its items are committed `pending` before the call
//! ([`SqliteBackend::record_pending_batch`]); the answer makes it `sent` or `failed`, or
//! leaves it `pending` with the error when the answer does not tell whether HSS took it.
//! Complete syncs then close each open item from what HSS shows
//! ([`SqliteBackend::close_items`]).

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::leases::check_fence;
use super::{Context, SqliteBackend, push_in_list};
use crate::domain::{BatchFailure, DueReason, ImageType, ScanTask};
use crate::store::rows::{BatchRow, OpenItemRow};
use crate::store::{
    Batch, BatchStatus, Claim, Claimed, DueImage, Fence, ItemOutcome, NewBatch, OpenItem, OpenTask,
    StoreError, Submissions, digest_hash,
};

/// Images per multi-row statement (11 variables each, well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 1000;

/// Ids per check of a batch's images (one bound JSON array, so no variable limit applies).
const IDS_PER_CHECK: usize = 5000;

#[async_trait]
impl Submissions for SqliteBackend {
    /// Images submitted since `since` (ms) in batches HSS may have taken (`sent` or
    /// `pending`): what the daily budget has used.
    #[tracing::instrument(skip_all, err)]
    async fn submitted_since(&self, since: i64) -> Result<u64, StoreError> {
        let used: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(items), 0) FROM scan_batches \
             WHERE created_at >= ? AND status <> 'failed'",
        )
        .bind(since)
        .fetch_one(&self.reader)
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
        // The write lock is held from here to the commit, so no other process can take the
        // lease or submit an image between the checks below and the batch that claims it.
        let mut tx = self.write().await?;
        if let Err(lease) = check_fence(&mut tx, fence, now).await? {
            return Ok(Claim::Fenced(lease));
        }
        let mut current: HashMap<i64, Option<i64>> = HashMap::with_capacity(items.len());
        for chunk in items.chunks(IDS_PER_CHECK) {
            let ids =
                serde_json::to_string(&chunk.iter().map(|d| d.planned.row_id).collect::<Vec<_>>())
                    .map_err(|_| StoreError::Corrupt { what: "an id list" })?;
            // Present images from the narrow policy index, their last submission from ours.
            let packed: Option<String> = sqlx::query_scalar(
                "SELECT json_group_array(json_array(i.id, s.last_submitted_at)) \
                 FROM images i INDEXED BY images_policy \
                 LEFT JOIN submission_state s ON s.image_row_id = i.id \
                 WHERE i.target = ? AND i.id IN (SELECT value FROM json_each(?)) \
                 AND i.deleted_at IS NULL",
            )
            .bind(batch.target)
            .bind(ids)
            .fetch_one(&mut *tx)
            .await
            .context("check that the images are still unclaimed")?;
            if let Some(packed) = packed {
                let rows: Vec<(i64, Option<i64>)> =
                    serde_json::from_str(&packed).map_err(|_| StoreError::Corrupt {
                        what: "the packed submission times",
                    })?;
                current.extend(rows);
            }
        }
        // An image whose last submission is no longer the one it was planned after was
        // claimed by another process (or deleted) meanwhile: it is left out, not sent twice.
        // (The plan's reading, not `due_images`': that one is made just before this batch,
        // after the other process may have claimed the image.)
        let (items, left_out): (Vec<&DueImage>, Vec<&DueImage>) = items
            .iter()
            .partition(|d| current.get(&d.planned.row_id) == Some(&d.planned.last_submitted_at()));
        if items.is_empty() {
            return Ok(Claim::NothingLeft);
        }
        let batch_id: i64 = sqlx::query_scalar(
            "INSERT INTO scan_batches (target, image_type, enterprise_project_id, owner, \
             parent_id, created_at, status, items, api, lease_term) \
             VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?) RETURNING id",
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
        // Two statements per chunk rather than two per image: a batch is up to 10,241.
        for chunk in items.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("UPDATE scan_items SET outcome = 'superseded', finished_at = ");
            q.push_bind(now)
                .push(" WHERE outcome IS NULL AND image_row_id");
            push_in_list(&mut q, chunk.iter().map(|item| item.planned.row_id));
            q.build()
                .execute(&mut *tx)
                .await
                .context("close superseded submissions")?;

            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO scan_items (batch_id, image_row_id, reason, rule, priority, \
                 status_before, scan_time_before, submitted_before, image_digest, digest_hash, \
                 digest_hash_before) ",
            );
            q.push_values(chunk, |mut row, item| {
                let due = &item.planned.due;
                row.push_bind(batch_id)
                    .push_bind(item.planned.row_id)
                    .push_bind(due.reason.as_str())
                    .push_bind(due.rule.map(|r| r as i64))
                    .push_bind(due.priority)
                    .push_bind(item.scan_status.as_str().to_owned())
                    .push_bind(item.latest_scan_time)
                    .push_bind(item.last_submitted_at)
                    .push_bind(item.identity.image_digest.clone())
                    .push_bind(digest_hash(&item.identity.image_digest))
                    .push_bind(item.submitted_digest_hash);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .context("record pending items")?;
        }
        // Every claimed image in flight, submitted now by this batch's item with its digest:
        // one statement, reading the batch's items in order.
        sqlx::query(
            "INSERT INTO submission_state (image_row_id, last_submitted_at, last_item_id, \
             in_flight, submitted_digest_hash) \
             SELECT image_row_id, ?, id, 1, digest_hash FROM scan_items WHERE batch_id = ? \
             ORDER BY image_row_id \
             ON CONFLICT (image_row_id) DO UPDATE SET \
             last_submitted_at = excluded.last_submitted_at, \
             last_item_id = excluded.last_item_id, in_flight = 1, \
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
             (SELECT image_row_id FROM scan_items WHERE batch_id = ? AND reason = ?)",
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
        let query = sqlx::query(
            "UPDATE scan_batches SET status = 'sent', answered_at = ?, task_id = ? WHERE id = ?",
        )
        .bind(now)
        .bind(task_id)
        .bind(batch_id);
        self.write_one(query, "mark a batch sent").await
    }

    async fn submitted_total(&self, target: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(items), 0) FROM scan_batches \
             WHERE target = ? AND status <> 'failed'",
        )
        .bind(target)
        .fetch_one(&self.reader)
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
        self.record_answer(batch_id, BatchStatus::Pending, failure, now)
            .await
    }

    /// HSS certainly did not take the batch: its items are rejected and their images go back
    /// to how they were before, so that the policy sees them due again.
    #[tracing::instrument(skip_all, err, fields(batch = batch_id))]
    async fn mark_batch_failed(
        &self,
        batch_id: i64,
        failure: &BatchFailure,
        now: i64,
    ) -> Result<(), StoreError> {
        self.record_answer(batch_id, BatchStatus::Failed, failure, now)
            .await?;
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE submission_state SET in_flight = 0, \
             (last_submitted_at, submitted_digest_hash) = \
             (SELECT submitted_before, digest_hash_before FROM scan_items \
              WHERE scan_items.id = submission_state.last_item_id) \
             WHERE image_row_id IN (SELECT image_row_id FROM scan_items WHERE batch_id = ?) \
             AND last_item_id IN (SELECT id FROM scan_items WHERE batch_id = ?)",
        )
        .bind(batch_id)
        .bind(batch_id)
        .execute(&mut *tx)
        .await
        .context("release the images of a failed batch")?;
        sqlx::query(
            "UPDATE scan_items SET outcome = 'rejected', finished_at = ? \
             WHERE batch_id = ? AND outcome IS NULL",
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
        // The partial index of open items is in (image row id, item id) order: each page
        // starts where the last one ended, without a sort.
        let rows: Vec<OpenItemRow> = sqlx::query_as(
            "SELECT s.id AS item_id, s.image_row_id, s.batch_id, b.status AS batch_status, \
             b.created_at AS submitted_at, s.status_before, s.scan_time_before, \
             i.scan_status, i.latest_scan_time, i.deleted_at IS NOT NULL AS deleted, \
             b.lease_term AS batch_term \
             FROM scan_items s INDEXED BY scan_items_open_by_image \
             JOIN scan_batches b ON b.id = s.batch_id \
             JOIN images i ON i.id = s.image_row_id \
             WHERE s.outcome IS NULL AND b.status <> 'failed' \
             AND b.target = ? AND b.image_type = ? AND (s.image_row_id, s.id) > (?, ?) \
             ORDER BY s.image_row_id, s.id LIMIT ?",
        )
        .bind(target)
        .bind(image_type.as_str())
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .context("read open submissions")?;
        rows.into_iter().map(OpenItemRow::into_item).collect()
    }

    /// Closes items with their outcomes, in one transaction, and moves their images on:
    /// out of flight; a failed scan adds to the image's consecutive failures and a success
    /// clears them; a lost submission gives the image back its earlier submission time, so
    /// that it is due again under its old reason.
    #[tracing::instrument(skip_all, err, fields(items = outcomes.len()))]
    async fn close_items(
        &self,
        outcomes: &[(OpenItem, ItemOutcome)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (item, outcome) in outcomes {
            sqlx::query("UPDATE scan_items SET outcome = ?, finished_at = ? WHERE id = ?")
                .bind(outcome.as_str())
                .bind(now)
                .bind(item.item_id)
                .execute(&mut *tx)
                .await
                .context("close a submission")?;
            let image_update = match outcome {
                ItemOutcome::Success => {
                    "UPDATE submission_state SET in_flight = 0, failed_submissions = 0 \
                     WHERE image_row_id = ? AND last_item_id = ?"
                }
                ItemOutcome::Failed => {
                    "UPDATE submission_state SET in_flight = 0, \
                     failed_submissions = failed_submissions + 1 \
                     WHERE image_row_id = ? AND last_item_id = ?"
                }
                ItemOutcome::Lost => {
                    "UPDATE submission_state SET in_flight = 0, \
                     (last_submitted_at, submitted_digest_hash) = \
                     (SELECT submitted_before, digest_hash_before FROM scan_items \
                      WHERE scan_items.id = submission_state.last_item_id) \
                     WHERE image_row_id = ? AND last_item_id = ?"
                }
                ItemOutcome::Vanished => {
                    "UPDATE submission_state SET in_flight = 0 \
                     WHERE image_row_id = ? AND last_item_id = ?"
                }
            };
            sqlx::query(image_update)
                .bind(item.image_row_id)
                .bind(item.item_id)
                .execute(&mut *tx)
                .await
                .context("move a submitted image on")?;
        }
        tx.commit().await.context("close submissions")
    }

    /// The latest `limit` batches, newest first.
    #[tracing::instrument(skip_all, err)]
    async fn recent_batches(&self, limit: i64) -> Result<Vec<Batch>, StoreError> {
        let rows: Vec<BatchRow> = sqlx::query_as(
            "SELECT id, target, image_type, parent_id, created_at, answered_at, status, items, \
             http_status, error_code, request_id, error, api, task_id, task_progress, \
             task_succeeded, task_failed FROM scan_batches ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .context("read the latest batches")?;
        Ok(rows.into_iter().map(Batch::from).collect())
    }

    async fn open_tasks(&self, target: &str) -> Result<Vec<OpenTask>, StoreError> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, task_id, created_at FROM scan_batches \
             WHERE target = ? AND api = 'current' AND task_ended_at IS NULL \
             AND task_id IS NOT NULL ORDER BY id",
        )
        .bind(target)
        .fetch_all(&self.reader)
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
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE scan_batches SET task_progress = ?, task_succeeded = ?, task_failed = ?, \
             task_checked_at = ?, task_ended_at = ? WHERE id = ?",
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
        for (record_id, reason) in &task.failed_images {
            let Some(record_id) = record_id else {
                continue;
            };
            sqlx::query(
                "UPDATE scan_items SET task_failure = ? WHERE batch_id = ? AND image_row_id IN \
                 (SELECT i.id FROM images i JOIN scan_batches b ON b.target = i.target \
                  WHERE b.id = ? AND i.hss_record_id = ?)",
            )
            .bind(reason)
            .bind(batch_id)
            .bind(batch_id)
            .bind(record_id)
            .execute(&mut *tx)
            .await
            .context("record an image a scan task failed")?;
        }
        tx.commit().await.context("record a scan task's progress")
    }
}

impl SqliteBackend {
    /// Records the answer (or the error) of a batch's call.
    async fn record_answer(
        &self,
        batch_id: i64,
        status: BatchStatus,
        failure: &BatchFailure,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE scan_batches SET status = ?, answered_at = ?, http_status = ?, \
             error_code = ?, request_id = ?, error = ? WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(failure.http_status.map(i64::from))
        .bind(&failure.error_code)
        .bind(&failure.request_id)
        .bind(&failure.message)
        .bind(batch_id)
        .execute(&mut *tx)
        .await
        .context("record a batch's answer")?;
        tx.commit().await.context("record a batch's answer")
    }
}
