//! Sync: page through HSS's image list for each target and image type, write what changed,
//! and close the run.
//!
//! Two rules keep the inventory true when HSS misbehaves. An image is marked deleted only by a
//! sync that listed every page without error and saw the same `total_num` on every page, with
//! as many images as it announced; anything less is a `partial` sync that deletes nothing.
//! And the list is never held in memory: pages stream from a bounded number of concurrent
//! requests into transactions of a few thousand images, and only two hashes and a row id per
//! known image are kept.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::domain::{ImageType, Target};
use crate::hss::client::HssClient;
use crate::hss::error::HssError;
use crate::hss::model::{ImagePage, ListSwrImages};
use crate::store::{PreparedImage, Store, StoreError, SyncOutcome, SyncRunCounts, now_ms};
use crate::submit::{self, Reconciled};

/// Pages in flight at once. The client's rate limit still applies; this only bounds memory
/// and lets parsing overlap with writing.
pub const PAGE_CONCURRENCY: usize = 4;

/// How one target and image type was synced.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub target: String,
    pub image_type: ImageType,
    pub run_id: i64,
    pub outcome: SyncOutcome,
    pub counts: SyncRunCounts,
    /// What went wrong, if anything (also when the listing still completed, e.g. a failed
    /// `trigger_swr_sync`).
    pub error: Option<String>,
    /// How our submissions moved on; only a complete sync can tell.
    pub reconciled: Option<Reconciled>,
}

/// How to sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// `hss.page_size`.
    pub page_size: u32,
    /// `policy.submit_grace`: how long HSS may take to show that it received a submission.
    pub submit_grace: Duration,
}

impl SyncReport {
    /// Everything asked for was done.
    pub fn succeeded(&self) -> bool {
        self.outcome == SyncOutcome::Complete && self.error.is_none()
    }
}

/// Syncs every image type of `target`, one after the other. A type that fails does not stop
/// the others; only a database failure ends the target's sync early.
pub async fn sync_target(
    store: &Store,
    client: &HssClient,
    target: &Target,
    options: SyncOptions,
) -> Result<Vec<SyncReport>, StoreError> {
    let mut reports = Vec::with_capacity(target.image_types.len());
    for image_type in &target.image_types {
        reports.push(sync_image_type(store, client, target, image_type, options).await?);
    }
    Ok(reports)
}

/// Images written per transaction. Larger transactions write each touched index page to the
/// WAL once instead of once per page of the listing; a crash loses only uncommitted pages,
/// which the next sync writes again.
const ROWS_PER_TRANSACTION: usize = 4_000;

/// The per-image state of one sync: what the store had, and whether this listing saw it.
struct Seen {
    /// Row id; `None` for an image this sync inserted.
    id: Option<i64>,
    content_hash: i64,
    deleted: bool,
    seen: bool,
}

#[tracing::instrument(skip_all, fields(target = %target.name, image_type = %image_type))]
pub async fn sync_image_type(
    store: &Store,
    client: &HssClient,
    target: &Target,
    image_type: &ImageType,
    options: SyncOptions,
) -> Result<SyncReport, StoreError> {
    let started_at = now_ms();
    let run_id = store.start_sync_run(&target.name, image_type).await?;
    let mut notes = Vec::new();
    if target.trigger_swr_sync
        && let Err(err) = client.synchronize(image_type).await
    {
        // The list HSS already has is still worth reading; the failure is reported.
        notes.push(format!("trigger_swr_sync: {err}"));
    }

    let loading = std::time::Instant::now();
    let known: HashMap<i64, Seen> = store
        .known_images(&target.name, image_type)
        .await?
        .into_iter()
        .map(|(key, k)| {
            let seen = Seen {
                id: Some(k.id),
                content_hash: k.content_hash,
                deleted: k.deleted,
                seen: false,
            };
            (key, seen)
        })
        .collect();

    tracing::debug!(
        known = known.len(),
        elapsed_ms = loading.elapsed().as_millis() as u64,
        "inventory index loaded"
    );
    let mut pass = Pass {
        store,
        target: &target.name,
        known,
        counts: SyncRunCounts::default(),
        pending: Vec::with_capacity(ROWS_PER_TRANSACTION + 200),
    };
    let listing = list_pages(client, image_type, options.page_size, &mut pass).await?;
    // Whatever was listed is written, complete or not: it is what HSS says now.
    pass.flush().await?;
    let Pass {
        known, mut counts, ..
    } = pass;
    let mut reconciled = None;

    let outcome = match &listing {
        Listing::Failed(err) => {
            notes.push(format!("listing failed: {err}"));
            SyncOutcome::Failed
        }
        Listing::Incomplete(reason) => {
            notes.push(reason.clone());
            SyncOutcome::Partial
        }
        Listing::Complete => {
            let vanished: Vec<i64> = known
                .values()
                .filter(|k| !k.seen && !k.deleted)
                .filter_map(|k| k.id)
                .collect();
            if !vanished.is_empty() {
                counts.deleted = store.mark_deleted(&vanished, now_ms()).await? as i64;
            }
            reconciled = Some(
                submit::reconcile(
                    store,
                    &target.name,
                    image_type,
                    started_at,
                    options.submit_grace,
                )
                .await?,
            );
            SyncOutcome::Complete
        }
    };
    let error = (!notes.is_empty()).then(|| notes.join("; "));
    store
        .finish_sync_run(run_id, outcome, &counts, error.as_deref())
        .await?;
    tracing::info!(
        run = run_id,
        outcome = outcome.as_str(),
        pages = counts.pages,
        total = counts.total_num,
        seen = counts.seen,
        new = counts.new,
        changed = counts.changed,
        restored = counts.restored,
        deleted = counts.deleted,
        unreadable_fields = counts.unreadable_fields,
        error = error.as_deref().unwrap_or(""),
        "sync finished"
    );
    Ok(SyncReport {
        target: target.name.clone(),
        image_type: image_type.clone(),
        run_id,
        outcome,
        counts,
        error,
        reconciled,
    })
}

/// How the listing went.
enum Listing {
    /// Every page, a steady `total_num`, and as many images as it announced.
    Complete,
    /// Pages were written, but the listing cannot be proved whole.
    Incomplete(String),
    /// Not even the first page came back.
    Failed(HssError),
}

async fn list_pages(
    client: &HssClient,
    image_type: &ImageType,
    page_size: u32,
    pass: &mut Pass<'_>,
) -> Result<Listing, StoreError> {
    let query = |offset: u32| ListSwrImages {
        image_type: image_type.clone(),
        offset,
        limit: page_size,
        enterprise_project_id: String::new(),
        latest_version: None,
        scan_status: None,
    };
    let first = match client.list_swr_images(&query(0)).await {
        Ok(page) => page,
        Err(err) => return Ok(Listing::Failed(err)),
    };
    let Some(total) = first.total_num.filter(|t| *t >= 0) else {
        pass.take(first).await?;
        return Ok(Listing::Incomplete(
            "HSS sent no readable total_num, so the listing cannot be proved complete".into(),
        ));
    };
    pass.counts.total_num = Some(total);
    pass.take(first).await?;

    // Later pages are fetched by their own tasks, so that requests and JSON parsing run while
    // the previous page is being written; `buffered` keeps them in order and bounded.
    let offsets = (u64::from(page_size)..total as u64)
        .step_by(page_size as usize)
        .map(|offset| u32::try_from(offset).unwrap_or(u32::MAX));
    let mut pages = futures::stream::iter(offsets)
        .map(|offset| {
            let client = client.clone();
            let q = query(offset);
            tokio::spawn(async move { client.list_swr_images(&q).await })
        })
        .buffered(PAGE_CONCURRENCY);

    let mut drift = None;
    while let Some(joined) = pages.next().await {
        let page = match joined {
            Ok(Ok(page)) => page,
            Ok(Err(err)) => {
                return Ok(Listing::Incomplete(format!(
                    "listing stopped after {} pages: {err}",
                    pass.counts.pages
                )));
            }
            Err(join) => {
                return Ok(Listing::Incomplete(format!(
                    "listing stopped after {} pages: a page request failed: {join}",
                    pass.counts.pages
                )));
            }
        };
        if page.total_num != Some(total) && drift.is_none() {
            drift = Some(page.total_num);
        }
        pass.take(page).await?;
    }
    if let Some(now) = drift {
        let now = now.map_or_else(|| "unreadable".to_owned(), |n| n.to_string());
        return Ok(Listing::Incomplete(format!(
            "total_num changed from {total} to {now} while listing; nothing was deleted"
        )));
    }
    if pass.counts.seen != total {
        return Ok(Listing::Incomplete(format!(
            "HSS announced {total} images but listed {}; nothing was deleted",
            pass.counts.seen
        )));
    }
    Ok(Listing::Complete)
}

/// One sync's state: what the store had (two hashes and a row id per image), the counts, and
/// the images waiting to be written.
struct Pass<'a> {
    store: &'a Store,
    target: &'a str,
    known: HashMap<i64, Seen>,
    counts: SyncRunCounts,
    pending: Vec<PreparedImage>,
}

impl Pass<'_> {
    /// Compares a page with what the store knows; queues new, changed and returning images.
    async fn take(&mut self, page: ImagePage) -> Result<(), StoreError> {
        let counts = &mut self.counts;
        counts.pages += 1;
        counts.seen += page.images.len() as i64;
        counts.unreadable_fields += i64::from(page.unreadable_fields);
        for image in page.images {
            let prepared = PreparedImage::new(image);
            match self.known.get_mut(&prepared.key_hash) {
                // Listed twice in one sync (the list moved under us): already handled.
                Some(k) if k.seen => {}
                Some(k) => {
                    k.seen = true;
                    if k.deleted {
                        counts.restored += 1;
                        self.pending.push(prepared);
                    } else if k.content_hash != prepared.content_hash {
                        counts.changed += 1;
                        self.pending.push(prepared);
                    }
                }
                None => {
                    counts.new += 1;
                    let seen = Seen {
                        id: None,
                        content_hash: prepared.content_hash,
                        deleted: false,
                        seen: true,
                    };
                    self.known.insert(prepared.key_hash, seen);
                    self.pending.push(prepared);
                }
            }
        }
        if self.pending.len() >= ROWS_PER_TRANSACTION {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the queued images in one transaction.
    async fn flush(&mut self) -> Result<(), StoreError> {
        self.store
            .upsert_images(self.target, &self.pending, now_ms())
            .await?;
        self.pending.clear();
        Ok(())
    }
}
