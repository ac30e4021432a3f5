//! `scan_batches` and `scan_items`: the audit trail of every batch-scan call, and the
//! per-image bookkeeping (`images.in_flight`, `last_submitted_at`, `failed_submissions`) the
//! policy reads.
//!
//! The protocol: a batch and its items are committed `pending` before the call
//! ([`Store::record_pending_batch`]); the answer makes it `sent` or `failed`, or leaves it
//! `pending` with the error when the answer does not tell whether HSS took it. Syncs then
//! close each open item from what HSS shows ([`Store::close_items`]).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::{Context, Store, StoreError, push_in_list};
use crate::domain::{ImageType, ScanStatus};
use crate::policy::{Candidate, Planned};

/// A planned image with what the batch-scan call and the audit trail need, read from the
/// database just before its batch is recorded ([`Store::due_images`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueImage {
    pub planned: Planned,
    pub namespace: String,
    pub image_name: String,
    pub image_version: String,
    pub instance_id: String,
    pub instance_url: String,
    pub scan_status: ScanStatus,
    pub latest_scan_time: Option<i64>,
    pub last_submitted_at: Option<i64>,
}

/// Row ids per packed read of candidates.
const CANDIDATE_CHUNK: i64 = 20_000;

/// Images per multi-row statement (8 variables each, well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 1000;

/// Ids per read of due images' names (one bound JSON array, so no variable limit applies).
const IDS_PER_READ: usize = 5000;

/// Chunks read at once: SQLite packs each on its own connection's thread, and the runtime
/// unpacks them, so the plan uses every core.
const CHUNKS_AHEAD: usize = 2;

/// One chunk of candidates from the `images_policy` covering index, as
/// `[id, policy_bits, latest_scan_time, last_submitted_at, failed_submissions]`. Numbers only:
/// every text value SQLite escapes into JSON costs more than the five numbers together.
const CANDIDATES: &str = "SELECT json_group_array(json_array(id, policy_bits, \
     latest_scan_time, last_submitted_at, failed_submissions)) \
     FROM images INDEXED BY images_policy \
     WHERE target = ? AND id > ? AND id <= ? AND deleted_at IS NULL";

/// The same with namespace, name and tag appended, from the table itself (`+target` keeps
/// SQLite on the row-id range rather than an index on target).
const CANDIDATES_WITH_NAMES: &str = "SELECT json_group_array(json_array(id, policy_bits, \
     latest_scan_time, last_submitted_at, failed_submissions, namespace, image_name, \
     image_version)) FROM images WHERE +target = ? AND id > ? AND id <= ? AND deleted_at IS NULL";

/// How a batch-scan call failed, as the store records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchError {
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub request_id: Option<String>,
    pub message: String,
}

/// An open item of a target and type, with what reconciliation needs to decide on it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct OpenItem {
    pub item_id: i64,
    pub image_id: i64,
    pub batch_id: i64,
    /// `pending` or `sent`.
    pub batch_status: String,
    /// When the batch was committed: the submission time.
    pub submitted_at: i64,
    pub status_before: String,
    pub scan_time_before: Option<i64>,
    pub scan_status: String,
    pub latest_scan_time: Option<i64>,
    pub deleted: bool,
}

/// How an item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    /// HSS scanned it successfully.
    Success,
    /// HSS scanned it and the scan failed.
    Failed,
    /// HSS never received it (its batch's answer never came and nothing moved).
    Lost,
    /// A complete sync no longer lists the image.
    Vanished,
}

impl ItemOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::Success => "success",
            ItemOutcome::Failed => "failed",
            ItemOutcome::Lost => "lost",
            ItemOutcome::Vanished => "vanished",
        }
    }
}

/// A row of `scan_batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct Batch {
    pub id: i64,
    pub target: String,
    pub image_type: String,
    pub parent_id: Option<i64>,
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub status: String,
    pub items: i64,
    pub http_status: Option<i64>,
    pub error_code: Option<String>,
    pub request_id: Option<String>,
    pub error: Option<String>,
}

impl Store {
    /// Every present image of `target`, as the policy sees it, handed to `visit` one by one
    /// so that the inventory is never held in memory as a whole. `with_names`: fill in
    /// namespace, name and tag (only `[[policy.rules]]` need them).
    ///
    /// Read in row-id order, [`CANDIDATE_CHUNK`] ids per query, each chunk packed by SQLite
    /// as one JSON array: one value for sqlx to hand over instead of a row per image (about
    /// 3.5 µs each). Without names the query reads only the `images_policy` covering index,
    /// a tenth of the table. The next chunk is read by another connection while this one is
    /// judged, so SQLite and the policy share the cores.
    #[tracing::instrument(skip_all, err, fields(target))]
    pub async fn visit_candidates(
        &self,
        target: &str,
        with_names: bool,
        // A trait object, not a generic closure: a future holding a closure generic over
        // the lifetime of its argument is not provably `Send` (rust-lang/rust#64552).
        visit: &mut (dyn FnMut(&Candidate) + Send),
    ) -> Result<(), StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM images")
            .fetch_one(&self.reader)
            .await
            .context("read the inventory")?;
        let last = last.unwrap_or(0);
        let sql = if with_names {
            CANDIDATES_WITH_NAMES
        } else {
            CANDIDATES
        };
        let fetch = |after: i64| {
            let reader = self.reader.clone();
            let target = target.to_owned();
            tokio::spawn(async move {
                let packed: Option<String> = sqlx::query_scalar(sql)
                    .bind(target)
                    .bind(after)
                    .bind(after.saturating_add(CANDIDATE_CHUNK))
                    .fetch_one(&reader)
                    .await
                    .context("read the inventory")?;
                // Parsed here, on a runtime worker, so that chunks are unpacked in parallel.
                let Some(packed) = packed else {
                    return Ok(Vec::new());
                };
                let corrupt = |_| StoreError::Corrupt {
                    what: "the packed inventory",
                };
                let candidates = if with_names {
                    let rows: Vec<NamedCandidateRow<'_>> =
                        serde_json::from_str(&packed).map_err(corrupt)?;
                    rows.into_iter()
                        .map(NamedCandidateRow::into_candidate)
                        .collect()
                } else {
                    let rows: Vec<CandidateRow> = serde_json::from_str(&packed).map_err(corrupt)?;
                    rows.into_iter().map(CandidateRow::into_candidate).collect()
                };
                Ok::<Vec<Candidate>, StoreError>(candidates)
            })
        };
        let chunks = (0..=last / CANDIDATE_CHUNK).map(|n| n * CANDIDATE_CHUNK);
        let mut chunks = chunks.take_while(|after| *after < last);
        let mut ahead: VecDeque<_> = chunks.by_ref().take(CHUNKS_AHEAD).map(fetch).collect();
        while let Some(pending) = ahead.pop_front() {
            let candidates = pending.await.map_err(|_| StoreError::Corrupt {
                what: "a read of the inventory that was cancelled",
            })??;
            ahead.extend(chunks.next().map(fetch));
            candidates.iter().for_each(&mut *visit);
        }
        Ok(())
    }

    /// The names and current state of `planned` images, in the same order, for a batch or a
    /// page of output. Images deleted since the plan was made are left out.
    #[tracing::instrument(skip_all, err, fields(images = planned.len()))]
    pub async fn due_images(&self, planned: &[Planned]) -> Result<Vec<DueImage>, StoreError> {
        let mut found: HashMap<i64, DueRow> = HashMap::with_capacity(planned.len());
        for chunk in planned.chunks(IDS_PER_READ) {
            let ids = serde_json::to_string(&chunk.iter().map(|p| p.id).collect::<Vec<_>>())
                .map_err(|_| StoreError::Corrupt { what: "an id list" })?;
            let packed: Option<String> = sqlx::query_scalar(
                "SELECT json_group_array(json_array(id, namespace, image_name, image_version, \
                 instance_id, instance_url, scan_status, latest_scan_time, last_submitted_at)) \
                 FROM images WHERE id IN (SELECT value FROM json_each(?)) AND deleted_at IS NULL",
            )
            .bind(ids)
            .fetch_one(&self.reader)
            .await
            .context("read the due images")?;
            if let Some(packed) = packed {
                let rows: Vec<DueRow> =
                    serde_json::from_str(&packed).map_err(|_| StoreError::Corrupt {
                        what: "the packed due images",
                    })?;
                found.extend(rows.into_iter().map(|r| (r.0, r)));
            }
        }
        Ok(planned
            .iter()
            .filter_map(|p| {
                let DueRow(
                    _,
                    namespace,
                    image_name,
                    image_version,
                    instance_id,
                    instance_url,
                    status,
                    scan,
                    submitted,
                ) = found.remove(&p.id)?;
                Some(DueImage {
                    planned: p.clone(),
                    namespace,
                    image_name,
                    image_version,
                    instance_id,
                    instance_url,
                    scan_status: ScanStatus::from(status.as_str()),
                    latest_scan_time: scan,
                    last_submitted_at: submitted,
                })
            })
            .collect())
    }

    /// Images submitted since `since` (ms) in batches HSS may have taken (`sent` or
    /// `pending`): what the daily budget has used.
    #[tracing::instrument(skip_all, err)]
    pub async fn submitted_since(&self, since: i64) -> Result<u64, StoreError> {
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

    /// Commits a batch and its items as `pending`, and marks its images in flight, before
    /// the call is made. Earlier open items of the same images are closed as superseded.
    #[tracing::instrument(skip_all, err, fields(target, items = items.len()))]
    pub async fn record_pending_batch(
        &self,
        target: &str,
        image_type: &ImageType,
        enterprise_project_id: &str,
        parent_id: Option<i64>,
        items: &[DueImage],
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let batch_id: i64 = sqlx::query_scalar(
            "INSERT INTO scan_batches (target, image_type, enterprise_project_id, owner, \
             parent_id, created_at, status, items) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) \
             RETURNING id",
        )
        .bind(target)
        .bind(image_type.as_str())
        .bind(enterprise_project_id)
        .bind(self.owner.as_str())
        .bind(parent_id)
        .bind(now)
        .bind(items.len() as i64)
        .fetch_one(&mut *tx)
        .await
        .context("record a pending batch")?;
        // Three statements per chunk rather than three per image: a batch is up to 10,241.
        for chunk in items.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("UPDATE scan_items SET outcome = 'superseded', finished_at = ");
            q.push_bind(now).push(" WHERE outcome IS NULL AND image_id");
            push_in_list(&mut q, chunk.iter().map(|item| item.planned.id));
            q.build()
                .execute(&mut *tx)
                .await
                .context("close superseded submissions")?;

            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO scan_items (batch_id, image_id, reason, rule, priority, \
                 status_before, scan_time_before, submitted_before) ",
            );
            q.push_values(chunk, |mut row, item| {
                let due = &item.planned.due;
                row.push_bind(batch_id)
                    .push_bind(item.planned.id)
                    .push_bind(due.reason.as_str())
                    .push_bind(due.rule.map(|r| r as i64))
                    .push_bind(due.priority)
                    .push_bind(item.scan_status.as_str().to_owned())
                    .push_bind(item.latest_scan_time)
                    .push_bind(item.last_submitted_at);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .context("record pending items")?;

            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("UPDATE images SET in_flight = 1, last_submitted_at = ");
            q.push_bind(now)
                .push(
                    // `outcome IS NULL` lets SQLite use the partial index on open items by
                    // image; by batch alone it would scan the whole batch for every image.
                    ", last_item_id = (SELECT s.id FROM scan_items s \
                     WHERE s.image_id = images.id AND s.outcome IS NULL AND s.batch_id = ",
                )
                .push_bind(batch_id)
                .push(") WHERE id");
            push_in_list(&mut q, chunk.iter().map(|item| item.planned.id));
            q.build()
                .execute(&mut *tx)
                .await
                .context("mark images in flight")?;
        }
        tx.commit().await.context("record a pending batch")?;
        Ok(batch_id)
    }

    /// HSS accepted the batch.
    #[tracing::instrument(skip_all, err, fields(batch = batch_id))]
    pub async fn mark_batch_sent(&self, batch_id: i64, now: i64) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE scan_batches SET status = 'sent', answered_at = ? WHERE id = ?")
            .bind(now)
            .bind(batch_id)
            .execute(&mut *tx)
            .await
            .context("mark a batch sent")?;
        tx.commit().await.context("mark a batch sent")
    }

    /// The call ended without telling whether HSS took the batch: it stays `pending`, its
    /// images stay in flight, and the next syncs decide.
    #[tracing::instrument(skip_all, err, fields(batch = batch_id))]
    pub async fn mark_batch_unknown(
        &self,
        batch_id: i64,
        error: &BatchError,
        now: i64,
    ) -> Result<(), StoreError> {
        self.record_answer(batch_id, "pending", error, now).await
    }

    /// HSS certainly did not take the batch: its items are rejected and their images go back
    /// to how they were before, so that the policy sees them due again.
    #[tracing::instrument(skip_all, err, fields(batch = batch_id))]
    pub async fn mark_batch_failed(
        &self,
        batch_id: i64,
        error: &BatchError,
        now: i64,
    ) -> Result<(), StoreError> {
        self.record_answer(batch_id, "failed", error, now).await?;
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE images SET in_flight = 0, last_submitted_at = \
             (SELECT submitted_before FROM scan_items WHERE scan_items.id = images.last_item_id) \
             WHERE last_item_id IN (SELECT id FROM scan_items WHERE batch_id = ?)",
        )
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

    async fn record_answer(
        &self,
        batch_id: i64,
        status: &'static str,
        error: &BatchError,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE scan_batches SET status = ?, answered_at = ?, http_status = ?, \
             error_code = ?, request_id = ?, error = ? WHERE id = ?",
        )
        .bind(status)
        .bind(now)
        .bind(error.http_status.map(i64::from))
        .bind(&error.error_code)
        .bind(&error.request_id)
        .bind(&error.message)
        .bind(batch_id)
        .execute(&mut *tx)
        .await
        .context("record a batch's answer")?;
        tx.commit().await.context("record a batch's answer")
    }

    /// The open items of a target and type, with their image's current state.
    #[tracing::instrument(skip_all, err, fields(target, image_type = %image_type))]
    pub async fn open_items(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<OpenItem>, StoreError> {
        sqlx::query_as(
            "SELECT s.id AS item_id, s.image_id, s.batch_id, b.status AS batch_status, \
             b.created_at AS submitted_at, s.status_before, s.scan_time_before, \
             i.scan_status, i.latest_scan_time, i.deleted_at IS NOT NULL AS deleted \
             FROM scan_items s JOIN scan_batches b ON b.id = s.batch_id \
             JOIN images i ON i.id = s.image_id \
             WHERE s.outcome IS NULL AND b.status <> 'failed' \
             AND b.target = ? AND b.image_type = ?",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_all(&self.reader)
        .await
        .context("read open submissions")
    }

    /// Closes items with their outcomes, in one transaction, and moves their images on:
    /// out of flight; a failed scan adds to the image's consecutive failures and a success
    /// clears them; a lost submission gives the image back its earlier submission time, so
    /// that it is due again under its old reason.
    #[tracing::instrument(skip_all, err, fields(items = outcomes.len()))]
    pub async fn close_items(
        &self,
        outcomes: &[(OpenItem, ItemOutcome)],
        now: i64,
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
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
                    "UPDATE images SET in_flight = 0, failed_submissions = 0 \
                     WHERE id = ? AND last_item_id = ?"
                }
                ItemOutcome::Failed => {
                    "UPDATE images SET in_flight = 0, \
                     failed_submissions = failed_submissions + 1 \
                     WHERE id = ? AND last_item_id = ?"
                }
                ItemOutcome::Lost => {
                    "UPDATE images SET in_flight = 0, last_submitted_at = \
                     (SELECT submitted_before FROM scan_items WHERE scan_items.id = images.last_item_id) \
                     WHERE id = ? AND last_item_id = ?"
                }
                ItemOutcome::Vanished => {
                    "UPDATE images SET in_flight = 0 WHERE id = ? AND last_item_id = ?"
                }
            };
            sqlx::query(image_update)
                .bind(item.image_id)
                .bind(item.item_id)
                .execute(&mut *tx)
                .await
                .context("move a submitted image on")?;
        }
        tx.commit().await.context("close submissions")
    }

    /// The latest `limit` batches, newest first.
    #[tracing::instrument(skip_all, err)]
    pub async fn recent_batches(&self, limit: i64) -> Result<Vec<Batch>, StoreError> {
        sqlx::query_as(
            "SELECT id, target, image_type, parent_id, created_at, answered_at, status, items, \
             http_status, error_code, request_id, error FROM scan_batches \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .context("read the latest batches")
    }
}

/// One image as `visit_candidates` packs it without names.
#[derive(serde::Deserialize)]
struct CandidateRow(i64, PolicyBits, Option<i64>, Option<i64>, i64);

/// One image as `visit_candidates` packs it with names. Text borrows from the packed chunk
/// unless JSON escaping forces a copy.
#[derive(serde::Deserialize)]
struct NamedCandidateRow<'a>(
    i64,
    PolicyBits,
    Option<i64>,
    Option<i64>,
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

impl CandidateRow {
    fn into_candidate(self) -> Candidate {
        let CandidateRow(id, bits, latest_scan_time, last_submitted_at, failed_submissions) = self;
        Candidate {
            id,
            image_type: bits.image_type(),
            namespace: String::new(),
            image_name: String::new(),
            image_version: String::new(),
            fits_batch_scan: bits.fits_batch_scan(),
            scan_status: bits.scan_status(),
            latest_scan_time,
            scannable: bits.scannable(),
            latest_version: bits.latest_version(),
            last_submitted_at,
            in_flight: bits.in_flight(),
            failed_submissions: u32::try_from(failed_submissions).unwrap_or(u32::MAX),
        }
    }
}

impl NamedCandidateRow<'_> {
    fn into_candidate(self) -> Candidate {
        let NamedCandidateRow(id, bits, scan, submitted, failed, namespace, name, version) = self;
        Candidate {
            namespace: namespace.into_owned(),
            image_name: name.into_owned(),
            image_version: version.into_owned(),
            ..CandidateRow(id, bits, scan, submitted, failed).into_candidate()
        }
    }
}

/// `images.policy_bits`: type, status and four flags in one number, as migration 0003
/// defines it: `type + 4·status + 32·scannable + 96·latest_version + 288·in_flight +
/// 576·fits_batch_scan`.
#[derive(serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
struct PolicyBits(u16);

/// Image types by their code in [`PolicyBits`]; 3 is any other.
const TYPE_CODES: [ImageType; 3] = [ImageType::Private, ImageType::Shared, ImageType::Instance];

/// Scan statuses by their code in [`PolicyBits`]; 7 is any other.
const STATUS_CODES: [ScanStatus; 7] = [
    ScanStatus::Unscan,
    ScanStatus::Scanning,
    ScanStatus::WaitingForScan,
    ScanStatus::Success,
    ScanStatus::Failed,
    ScanStatus::DownloadFailed,
    ScanStatus::ImageOversized,
];

impl PolicyBits {
    fn image_type(self) -> ImageType {
        TYPE_CODES
            .get(usize::from(self.0 % 4))
            .cloned()
            // The policy only needs to know it is none of ours; the name is not kept.
            .unwrap_or_else(|| ImageType::Other(String::new()))
    }
    fn scan_status(self) -> ScanStatus {
        STATUS_CODES
            .get(usize::from(self.0 / 4 % 8))
            .cloned()
            .unwrap_or_else(|| ScanStatus::Other(String::new()))
    }
    fn tristate(digit: u16) -> Option<bool> {
        match digit {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn scannable(self) -> Option<bool> {
        Self::tristate(self.0 / 32 % 3)
    }
    fn latest_version(self) -> Option<bool> {
        Self::tristate(self.0 / 96 % 3)
    }
    fn in_flight(self) -> bool {
        self.0 / 288 % 2 == 1
    }
    fn fits_batch_scan(self) -> bool {
        self.0 / 576 == 1
    }
}

/// One image as `due_images` packs it.
#[derive(serde::Deserialize)]
struct DueRow(
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
);
