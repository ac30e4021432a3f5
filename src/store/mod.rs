//! The database behind a facade: the only module with SQL.
//!
//! [`Store`] is what the rest of the program uses: domain-level methods, each one transaction,
//! named in the operator's words. It delegates to a [`Backend`], one per database, chosen by
//! the scheme of `database.url` in [`open`] (as atuin's server picks its `Database` and garage
//! wraps its engines in `Db(Arc<dyn IDb>)`). A backend's tricks stay inside its folder
//! ([`sqlite`] packs reads, tunes its page cache and tells dead processes by `/proc`;
//! [`postgres`] reads columns as arrays, writes with `UNNEST` and fences with row locks); the
//! row types every backend shares are in [`model`], the decoding of the policy's packed fields
//! in [`policy_fields`], and who owns a run in [`owner`]. One conformance suite, written
//! against the facade, runs against every backend. [`copy`] moves an SQLite database into
//! PostgreSQL (`hss-scand db copy`).
//!
//! Every time the store records (a run's start, a batch's submission) comes from the
//! [`Clock`] the store was opened with, the same one the pipeline decides by.

pub mod copy;
mod model;
mod owner;
mod policy_fields;
mod postgres;
mod rows;
mod sqlite;

#[cfg(test)]
mod conformance;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    BatchFailure, Candidate, Clock, Image, ImageType, Job, JobOutcome, Planned, ScanTask,
};

pub use model::{
    Batch, BatchStatus, Claim, Claimed, DueImage, Fence, ImageCount, ItemOutcome, JobRun,
    KnownImage, LeaseAttempt, LeaseState, ListingHistory, ListingKind, NewBatch, OpenItem,
    OpenTask, PastSync, PreparedImage, RiskCounts, RiskyImage, StoredTimes, SyncListing,
    SyncOutcome, SyncRun, SyncRunCounts, TargetFacts, digest_hash,
};

/// Every way the store fails. Each names what was being done; none is worth retrying by the
/// caller except by running the job again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "database.url: {scheme:?} is not a database hss-scand can use; write e.g. sqlite:///var/lib/hss-scand/hss-scand.db or postgres://hss-scand@db.example.com/hss_scand"
    )]
    Scheme { scheme: String },
    #[error("cannot open the database {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the database {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database: {what} is not in the expected form")]
    Corrupt { what: &'static str },
    #[error("database: {what}: no answer within {seconds} s")]
    Timeout { what: &'static str, seconds: u64 },
    #[error("database: {what}: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// What an upsert of images does to an image that is already there: rewrite it if its
/// content changed or it was marked deleted, else leave it alone. Both backends' statements
/// end with it; a macro, so that a statement can be one literal (`concat!`).
macro_rules! image_upsert_on_conflict {
    () => {
        " ON CONFLICT (target, key_hash) DO UPDATE SET \
         content_hash = excluded.content_hash, hss_record_id = excluded.hss_record_id, \
         instance_name = excluded.instance_name, instance_url = excluded.instance_url, \
         hss_image_id = excluded.hss_image_id, image_digest = excluded.image_digest, \
         latest_version = excluded.latest_version, scan_status = excluded.scan_status, \
         scan_failed_desc = excluded.scan_failed_desc, image_size = excluded.image_size, \
         latest_update_time = excluded.latest_update_time, \
         latest_scan_time = excluded.latest_scan_time, vul_num = excluded.vul_num, \
         unsafe_setting_num = excluded.unsafe_setting_num, \
         malicious_file_num = excluded.malicious_file_num, domain_name = excluded.domain_name, \
         shared_status = excluded.shared_status, scannable = excluded.scannable, \
         registry_id = excluded.registry_id, registry_name = excluded.registry_name, \
         registry_type = excluded.registry_type, latest_sync_time = excluded.latest_sync_time, \
         scan_failed_code = excluded.scan_failed_code, severity_level = excluded.severity_level, \
         is_multiple_arch = excluded.is_multiple_arch, unsubmittable = excluded.unsubmittable, \
         digest_hash = excluded.digest_hash, changed_at = excluded.changed_at, deleted_at = NULL \
         WHERE images.content_hash <> excluded.content_hash OR images.deleted_at IS NOT NULL"
    };
}
pub(crate) use image_upsert_on_conflict;

/// Adds what was being done to a sqlx error.
trait Context<T> {
    fn context(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { what, source })
    }
}

/// The scheme of a database URL, lower-cased (`sqlite`, `postgres`, …).
fn scheme(url: &str) -> String {
    url.split_once(':')
        .map_or(url, |(scheme, _)| scheme)
        .to_ascii_lowercase()
}

/// Opens (creating it if needed) and migrates the database `url` names, by its scheme.
pub async fn open(url: &str, clock: Clock) -> Result<Store, StoreError> {
    let backend: Arc<dyn Backend> = match scheme(url).as_str() {
        "sqlite" => Arc::new(sqlite::SqliteBackend::open(url, clock.now_ms()).await?),
        "postgres" | "postgresql" => {
            Arc::new(postgres::PgBackend::open(url, clock.now_ms()).await?)
        }
        _ => {
            return Err(StoreError::Scheme {
                scheme: url
                    .split_once(':')
                    .map_or(url, |(scheme, _)| scheme)
                    .to_owned(),
            });
        }
    };
    Ok(Store { backend, clock })
}

/// The database, opened and migrated. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    clock: Clock,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// What a database must do for hss-scand: the facade's methods, with the time passed in, in
/// parts that a backend implements one file each.
#[async_trait]
pub(crate) trait Backend:
    Inventory + Candidates + Submissions + RunLog + Leases + Listings + Send + Sync + fmt::Debug
{
    /// Whether the database answers a query.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Waits for pending writes and closes every connection.
    async fn close(&self);
}

/// The inventory: what every listing wrote.
#[async_trait]
pub(crate) trait Inventory: Send + Sync {
    async fn known_images(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<(i64, KnownImage)>, StoreError>;
    async fn upsert_images(
        &self,
        target: &str,
        images: &mut Vec<PreparedImage>,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn mark_deleted(&self, row_ids: &[i64], now: i64) -> Result<u64, StoreError>;
    async fn held_deletions(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<i64>, StoreError>;
    async fn hold_deletions(
        &self,
        target: &str,
        image_type: &ImageType,
        row_ids: &[i64],
    ) -> Result<(), StoreError>;
    async fn image_counts(&self) -> Result<Vec<ImageCount>, StoreError>;
    async fn risk_counts(&self) -> Result<Vec<RiskCounts>, StoreError>;
    async fn riskiest_images(&self, limit: i64) -> Result<Vec<RiskyImage>, StoreError>;
    async fn images_changed_since(&self, since: i64) -> Result<u64, StoreError>;
    async fn present_images(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<Image>, StoreError>;
    /// Tune for (`true`) or back from (`false`) the bulk writes of a sync.
    async fn bulk_writes(&self, bulk: bool) -> Result<(), StoreError>;
    /// [`Inventory::bulk_writes`]`(false)` from a context that cannot wait for it.
    fn end_bulk_writes_in_background(&self);
}

/// The policy's view of the inventory.
#[async_trait]
pub(crate) trait Candidates: Send + Sync {
    async fn visit_candidates(
        &self,
        target: &str,
        with_names: bool,
        visit: &mut (dyn for<'c> FnMut(&'c Candidate) + Send),
    ) -> Result<(), StoreError>;
    async fn due_images(&self, planned: &[Planned]) -> Result<Vec<DueImage>, StoreError>;
}

/// The audit trail of every scan call, and our bookkeeping on each image.
#[async_trait]
pub(crate) trait Submissions: Send + Sync {
    async fn submitted_since(&self, since: i64) -> Result<u64, StoreError>;
    async fn record_pending_batch(
        &self,
        batch: &NewBatch<'_>,
        items: &[DueImage],
        fence: &Fence,
        now: i64,
    ) -> Result<Claim, StoreError>;
    async fn submitted_total(&self, target: &str) -> Result<u64, StoreError>;
    async fn mark_batch_sent(
        &self,
        batch_id: i64,
        task_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn mark_batch_unknown(
        &self,
        batch_id: i64,
        failure: &BatchFailure,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn mark_batch_failed(
        &self,
        batch_id: i64,
        failure: &BatchFailure,
        now: i64,
    ) -> Result<(), StoreError>;
    /// At most `limit` open items of a target and type after `after` (image row id, item
    /// id), in that order.
    async fn open_items(
        &self,
        target: &str,
        image_type: &ImageType,
        after: (i64, i64),
        limit: i64,
    ) -> Result<Vec<OpenItem>, StoreError>;
    async fn close_items(
        &self,
        outcomes: &[(OpenItem, ItemOutcome)],
        now: i64,
    ) -> Result<(), StoreError>;
    async fn recent_batches(&self, limit: i64) -> Result<Vec<Batch>, StoreError>;
    async fn open_tasks(&self, target: &str) -> Result<Vec<OpenTask>, StoreError>;
    async fn record_task(&self, batch_id: i64, task: &ScanTask, now: i64)
    -> Result<(), StoreError>;
}

/// Incremental listing: how each sync listed, the history the next one decides by, and the
/// narrow reads of the inventory that spare an incremental sync loading all of it.
#[async_trait]
pub(crate) trait Listings: Send + Sync {
    async fn record_sync_listing(
        &self,
        run_id: i64,
        listing: &SyncListing,
    ) -> Result<(), StoreError>;
    async fn listing_history(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<ListingHistory, StoreError>;
    async fn known_images_by_key(
        &self,
        target: &str,
        image_type: &ImageType,
        key_hashes: &[i64],
    ) -> Result<HashMap<i64, KnownImage>, StoreError>;
    async fn stored_times(&self, row_ids: &[i64]) -> Result<HashMap<i64, StoredTimes>, StoreError>;
}

/// The leader lease: which replica may submit.
#[async_trait]
pub(crate) trait Leases: Send + Sync {
    async fn acquire_lease(
        &self,
        holder: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<LeaseAttempt, StoreError>;
    async fn renew_lease(
        &self,
        fence: &Fence,
        ttl_ms: i64,
        now: i64,
    ) -> Result<Option<Fence>, StoreError>;
    async fn release_lease(&self, fence: &Fence, now: i64) -> Result<(), StoreError>;
    async fn lease(&self) -> Result<Option<LeaseState>, StoreError>;
}

/// The record of every sync and every job run.
#[async_trait]
pub(crate) trait RunLog: Send + Sync {
    async fn start_sync_run(
        &self,
        target: &str,
        image_type: &ImageType,
        now: i64,
    ) -> Result<i64, StoreError>;
    async fn finish_sync_run(
        &self,
        id: i64,
        outcome: SyncOutcome,
        counts: &SyncRunCounts,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn recent_sync_runs(&self, limit: i64) -> Result<Vec<SyncRun>, StoreError>;
    async fn last_complete_sync(&self, target: &str) -> Result<Option<i64>, StoreError>;
    async fn start_job_run(
        &self,
        job: Job,
        run_id: &str,
        trigger: &str,
        now: i64,
    ) -> Result<i64, StoreError>;
    async fn finish_job_run(
        &self,
        id: i64,
        outcome: JobOutcome,
        summary: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn record_skipped_run(
        &self,
        job: Job,
        run_id: &str,
        trigger: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn last_job_success(&self, job: Job) -> Result<Option<i64>, StoreError>;
    async fn recent_job_runs(&self, limit: i64) -> Result<Vec<JobRun>, StoreError>;
    async fn record_target_facts(&self, facts: &TargetFacts) -> Result<(), StoreError>;
    async fn target_facts(&self) -> Result<Vec<TargetFacts>, StoreError>;
}

impl Store {
    /// The clock this store records times by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    // ----- The inventory -----

    /// Key hash and what is stored, in row order, for every image (present or deleted) of a
    /// target and type. A list rather than a map: the caller converts it in place into its
    /// own index instead of building a second structure beside it (a million entries each).
    pub async fn known_images(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<(i64, KnownImage)>, StoreError> {
        self.backend.known_images(target, image_type).await
    }

    /// Inserts new images and rewrites changed or returning ones, in one transaction. A row
    /// whose content hash is unchanged and which is present is left untouched, even if the
    /// caller sends it. A write that succeeds leaves `images` empty with its capacity: their
    /// text moves into the statement rather than being copied, and the caller's buffer serves
    /// its next page.
    pub async fn upsert_images(
        &self,
        target: &str,
        images: &mut Vec<PreparedImage>,
    ) -> Result<(), StoreError> {
        if images.is_empty() {
            return Ok(());
        }
        self.backend
            .upsert_images(target, images, self.clock.now_ms())
            .await
    }

    /// Marks the images of these rows deleted; returns how many were present.
    pub async fn mark_deleted(&self, row_ids: &[i64]) -> Result<u64, StoreError> {
        self.backend
            .mark_deleted(row_ids, self.clock.now_ms())
            .await
    }

    /// The rows whose deletion the last complete listing of `target` and `image_type` held
    /// back.
    pub async fn held_deletions(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<i64>, StoreError> {
        self.backend.held_deletions(target, image_type).await
    }

    /// Replaces the held-back deletions of `target` and `image_type` with `row_ids`.
    pub async fn hold_deletions(
        &self,
        target: &str,
        image_type: &ImageType,
        row_ids: &[i64],
    ) -> Result<(), StoreError> {
        self.backend
            .hold_deletions(target, image_type, row_ids)
            .await
    }

    /// What [`Store::known_images`] holds for these key hashes only (those of them the store
    /// has, present or deleted): an incremental sync looks up the few images it lists instead
    /// of loading the whole inventory.
    pub async fn known_images_by_key(
        &self,
        target: &str,
        image_type: &ImageType,
        key_hashes: &[i64],
    ) -> Result<HashMap<i64, KnownImage>, StoreError> {
        if key_hashes.is_empty() {
            return Ok(HashMap::new());
        }
        self.backend
            .known_images_by_key(target, image_type, key_hashes)
            .await
    }

    /// The stored update, sync and scan times of these rows (those that exist).
    pub async fn stored_times(
        &self,
        row_ids: &[i64],
    ) -> Result<HashMap<i64, StoredTimes>, StoreError> {
        if row_ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.backend.stored_times(row_ids).await
    }

    /// Present images per target, type and scan status.
    pub async fn image_counts(&self) -> Result<Vec<ImageCount>, StoreError> {
        self.backend.image_counts().await
    }

    /// What each target's present images were found to have at their last scan, counted from
    /// the policy index (never the wide rows: this is read at every metrics refresh).
    pub async fn risk_counts(&self) -> Result<Vec<RiskCounts>, StoreError> {
        self.backend.risk_counts().await
    }

    /// The `limit` riskiest present images of every target, most severe first, then by
    /// vulnerability count: those with a level above `Security` or any finding. Reads the
    /// table (for `status --risky`, not for metrics).
    pub async fn riskiest_images(&self, limit: i64) -> Result<Vec<RiskyImage>, StoreError> {
        self.backend.riskiest_images(limit).await
    }

    /// Images (present or deleted) inserted or rewritten at or after `since` (ms): what a
    /// sync actually wrote.
    pub async fn images_changed_since(&self, since: i64) -> Result<u64, StoreError> {
        self.backend.images_changed_since(since).await
    }

    /// Present images of a target and type, in key order (for tests and tools; the policy
    /// reads its own projection).
    pub async fn present_images(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<Image>, StoreError> {
        self.backend.present_images(target, image_type).await
    }

    /// Tunes the database for the bulk writes of a sync until the returned guard is
    /// finished (or dropped, on an early return or a panic).
    pub async fn bulk_writes(&self) -> Result<BulkWrites, StoreError> {
        self.backend.bulk_writes(true).await?;
        Ok(BulkWrites {
            backend: Some(Arc::clone(&self.backend)),
        })
    }

    // ----- The policy's view -----

    /// Every present image of `target`, as the policy sees it, handed to `visit` one by one
    /// so that the inventory is never held in memory as a whole. `with_names`: fill in
    /// namespace, name and tag (only `[[policy.rules]]` need them).
    pub async fn visit_candidates(
        &self,
        target: &str,
        with_names: bool,
        // A trait object, not a generic closure: a future holding a closure generic over
        // the lifetime of its argument is not provably `Send` (rust-lang/rust#64552).
        visit: &mut (dyn for<'c> FnMut(&'c Candidate) + Send),
    ) -> Result<(), StoreError> {
        self.backend
            .visit_candidates(target, with_names, visit)
            .await
    }

    /// The identities and current state of `planned` images, in the same order, for a batch
    /// or a page of output. Images deleted since the plan was made are left out.
    pub async fn due_images(&self, planned: &[Planned]) -> Result<Vec<DueImage>, StoreError> {
        self.backend.due_images(planned).await
    }

    // ----- Submissions -----

    /// Images submitted since `since` (ms) in batches HSS may have taken (`sent` or
    /// `pending`): what the daily budget has used.
    pub async fn submitted_since(&self, since: i64) -> Result<u64, StoreError> {
        self.backend.submitted_since(since).await
    }

    /// Claims `items` and commits them as a `pending` batch, in flight, before the call is
    /// made, in one transaction that first checks that `fence` still holds the lease (else
    /// [`Claim::Fenced`], and nothing is recorded). An image that another process submitted
    /// since the plan read it is left out, so that two processes never pay for one image
    /// twice. Earlier open items of the claimed images are closed as superseded.
    pub async fn record_pending_batch(
        &self,
        batch: &NewBatch<'_>,
        items: &[DueImage],
        fence: &Fence,
    ) -> Result<Claim, StoreError> {
        self.backend
            .record_pending_batch(batch, items, fence, self.clock.now_ms())
            .await
    }

    /// Images of `target` in batches HSS may have taken (`sent` or `pending`), ever.
    pub async fn submitted_total(&self, target: &str) -> Result<u64, StoreError> {
        self.backend.submitted_total(target).await
    }

    /// HSS accepted the batch, and made `task_id` of it (current API) if that was found.
    pub async fn mark_batch_sent(
        &self,
        batch_id: i64,
        task_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.backend
            .mark_batch_sent(batch_id, task_id, self.clock.now_ms())
            .await
    }

    /// The call ended without telling whether HSS took the batch: it stays `pending`, its
    /// images stay in flight, and the next syncs decide.
    pub async fn mark_batch_unknown(
        &self,
        batch_id: i64,
        failure: &BatchFailure,
    ) -> Result<(), StoreError> {
        self.backend
            .mark_batch_unknown(batch_id, failure, self.clock.now_ms())
            .await
    }

    /// HSS certainly did not take the batch: its items are rejected and their images go back
    /// to how they were before, so that the policy sees them due again.
    pub async fn mark_batch_failed(
        &self,
        batch_id: i64,
        failure: &BatchFailure,
    ) -> Result<(), StoreError> {
        self.backend
            .mark_batch_failed(batch_id, failure, self.clock.now_ms())
            .await
    }

    /// The open items of a target and type, with their image's current state, a page of
    /// `page_size` at a time, in image row order.
    pub fn open_item_pages<'a>(
        &'a self,
        target: &'a str,
        image_type: &'a ImageType,
        page_size: usize,
    ) -> OpenItemPages<'a> {
        OpenItemPages {
            store: self,
            target,
            image_type,
            page_size: i64::try_from(page_size.max(1)).unwrap_or(i64::MAX),
            after: Some((0, 0)),
        }
    }

    /// Every open item of a target and type, in image row order (for tests and small
    /// inventories: the pipeline reads them a page at a time).
    pub async fn open_items(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<OpenItem>, StoreError> {
        let mut all = Vec::new();
        let mut pages = self.open_item_pages(target, image_type, OPEN_ITEMS_PER_PAGE);
        while let Some(page) = pages.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// Closes items with their outcomes, in one transaction, and moves their images on:
    /// out of flight; a failed scan adds to the image's consecutive failures and a success
    /// clears them; a lost submission gives the image back its earlier submission time, so
    /// that it is due again under its old reason.
    pub async fn close_items(
        &self,
        outcomes: &[(OpenItem, ItemOutcome)],
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.backend
            .close_items(outcomes, self.clock.now_ms())
            .await
    }

    /// The latest `limit` batches, newest first.
    pub async fn recent_batches(&self, limit: i64) -> Result<Vec<Batch>, StoreError> {
        self.backend.recent_batches(limit).await
    }

    /// The scan tasks of `target` not yet seen to end, oldest first.
    pub async fn open_tasks(&self, target: &str) -> Result<Vec<OpenTask>, StoreError> {
        self.backend.open_tasks(target).await
    }

    /// Records a task's progress as HSS shows it now, with the images it says failed, and
    /// when it ended if it did.
    pub async fn record_task(&self, batch_id: i64, task: &ScanTask) -> Result<(), StoreError> {
        self.backend
            .record_task(batch_id, task, self.clock.now_ms())
            .await
    }

    // ----- The run log -----

    /// Records the start of a sync; the row stays `running` until [`Store::finish_sync_run`].
    pub async fn start_sync_run(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<i64, StoreError> {
        self.backend
            .start_sync_run(target, image_type, self.clock.now_ms())
            .await
    }

    pub async fn finish_sync_run(
        &self,
        id: i64,
        outcome: SyncOutcome,
        counts: &SyncRunCounts,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.backend
            .finish_sync_run(id, outcome, counts, error, self.clock.now_ms())
            .await
    }

    /// Records how the sync `run_id` lists (right after it starts) or listed (with what its
    /// self-check found, at its end).
    pub async fn record_sync_listing(
        &self,
        run_id: i64,
        listing: &SyncListing,
    ) -> Result<(), StoreError> {
        self.backend.record_sync_listing(run_id, listing).await
    }

    /// What the syncs of `target` and `image_type` so far say about how the next should list.
    pub async fn listing_history(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<ListingHistory, StoreError> {
        self.backend.listing_history(target, image_type).await
    }

    /// The latest `limit` sync runs, newest first.
    pub async fn recent_sync_runs(&self, limit: i64) -> Result<Vec<SyncRun>, StoreError> {
        self.backend.recent_sync_runs(limit).await
    }

    /// When the last complete sync of `target` finished (ms).
    pub async fn last_complete_sync(&self, target: &str) -> Result<Option<i64>, StoreError> {
        self.backend.last_complete_sync(target).await
    }

    /// Records the start of a run; it stays `running` until [`Store::finish_job_run`].
    pub async fn start_job_run(
        &self,
        job: Job,
        run_id: &str,
        trigger: &str,
    ) -> Result<i64, StoreError> {
        self.backend
            .start_job_run(job, run_id, trigger, self.clock.now_ms())
            .await
    }

    /// Records how a run ended (`success` or `failure`), with its one-line summary.
    pub async fn finish_job_run(
        &self,
        id: i64,
        outcome: JobOutcome,
        summary: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.backend
            .finish_job_run(id, outcome, summary, error, self.clock.now_ms())
            .await
    }

    /// Records a tick that found the previous run of `job` still going.
    pub async fn record_skipped_run(
        &self,
        job: Job,
        run_id: &str,
        trigger: &str,
    ) -> Result<(), StoreError> {
        self.backend
            .record_skipped_run(job, run_id, trigger, self.clock.now_ms())
            .await
    }

    /// When `job` last finished successfully (ms), to restore the metric after a restart.
    pub async fn last_job_success(&self, job: Job) -> Result<Option<i64>, StoreError> {
        self.backend.last_job_success(job).await
    }

    /// The latest `limit` job runs, newest first.
    pub async fn recent_job_runs(&self, limit: i64) -> Result<Vec<JobRun>, StoreError> {
        self.backend.recent_job_runs(limit).await
    }

    /// Replaces what is known of a target's HSS project.
    pub async fn record_target_facts(&self, facts: &TargetFacts) -> Result<(), StoreError> {
        self.backend.record_target_facts(facts).await
    }

    /// What each target's HSS project said at its last sync.
    pub async fn target_facts(&self) -> Result<Vec<TargetFacts>, StoreError> {
        self.backend.target_facts().await
    }

    // ----- The leader lease -----

    /// Takes the leader lease for `holder` for `ttl`: a new term when it was free or expired,
    /// the same term extended when `holder` already held it. [`LeaseAttempt::HeldBy`] when
    /// another replica holds it.
    pub async fn acquire_lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<LeaseAttempt, StoreError> {
        self.backend
            .acquire_lease(holder, duration_ms(ttl), self.clock.now_ms())
            .await
    }

    /// Extends the lease `fence` holds by `ttl` from now; `None` when it is no longer held
    /// (expired, or taken by another replica), and then this replica must step down.
    pub async fn renew_lease(
        &self,
        fence: &Fence,
        ttl: std::time::Duration,
    ) -> Result<Option<Fence>, StoreError> {
        self.backend
            .renew_lease(fence, duration_ms(ttl), self.clock.now_ms())
            .await
    }

    /// Gives the lease up now, so that another replica can take it at once (a clean stop).
    /// Does nothing if `fence` no longer holds it.
    pub async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        self.backend.release_lease(fence, self.clock.now_ms()).await
    }

    /// Who holds the lease as the database says, expired or not; `None` before anyone took
    /// it.
    pub async fn lease(&self) -> Result<Option<LeaseState>, StoreError> {
        self.backend.lease().await
    }

    // ----- The connection -----

    /// Whether the database answers a query (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    /// Waits for pending writes and closes every connection.
    pub async fn close(&self) {
        self.backend.close().await;
    }
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Open items a page per query: reconciling 780,000 open submissions held them all at once,
/// 230 MB of peak; a page of them is a few MB.
pub const OPEN_ITEMS_PER_PAGE: usize = 10_000;

/// The open items of a target and type, read a page at a time (see
/// [`Store::open_item_pages`]). Items closed between pages do not move the next page.
pub struct OpenItemPages<'a> {
    store: &'a Store,
    target: &'a str,
    image_type: &'a ImageType,
    page_size: i64,
    /// Image row id and item id of the last item handed out; `None` once a page came short.
    after: Option<(i64, i64)>,
}

impl OpenItemPages<'_> {
    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<OpenItem>>, StoreError> {
        let Some(after) = self.after else {
            return Ok(None);
        };
        let page = self
            .store
            .backend
            .open_items(self.target, self.image_type, after, self.page_size)
            .await?;
        self.after = match page.last() {
            Some(last) if page.len() as i64 >= self.page_size => {
                Some((last.image_row_id, last.item_id))
            }
            _ => None,
        };
        Ok((!page.is_empty()).then_some(page))
    }
}

/// The database tuned for a sync's bulk writes. [`BulkWrites::finish`] tunes it back and
/// reports whether that worked; dropping the guard without finishing (an early return, a
/// panic) still tunes it back, in the background.
#[must_use = "finish() tunes the database back"]
pub struct BulkWrites {
    backend: Option<Arc<dyn Backend>>,
}

impl BulkWrites {
    pub async fn finish(mut self) -> Result<(), StoreError> {
        match self.backend.take() {
            Some(backend) => backend.bulk_writes(false).await,
            None => Ok(()),
        }
    }
}

impl Drop for BulkWrites {
    fn drop(&mut self) {
        if let Some(backend) = self.backend.take() {
            backend.end_bulk_writes_in_background();
        }
    }
}
