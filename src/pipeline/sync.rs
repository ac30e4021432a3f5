//! Sync: page through HSS's image list for one target and image type, write what changed, and
//! close the run. It only reads HSS and writes the inventory; what the listing means for our
//! submissions is [`super::reconcile`]'s business, which the pipeline runs after a complete
//! sync.
//!
//! Two rules keep the inventory true when HSS misbehaves. An image is marked deleted only by a
//! sync that listed every page without error and saw the same `total_num` on every page, with
//! as many images as it announced; anything less is a `partial` sync that deletes nothing.
//! And the list is never held in memory: pages stream from a bounded number of concurrent
//! requests into transactions of a few thousand images, and only two hashes and a row id per
//! known image are kept.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio_util::task::AbortOnDropHandle;

use super::report::SyncReport;
use crate::domain::{Clock, ImageType, Target};
use crate::hss::{ImagePage, ImageSource, PageRequest, SourceError};
use crate::store::{PreparedImage, Store, StoreError, SyncOutcome, SyncRunCounts};

/// Pages in flight at once. The client's rate limit still applies; this only bounds memory
/// and lets parsing overlap with writing.
pub const PAGE_CONCURRENCY: usize = 4;

/// Images written per transaction. Larger transactions write each touched index page to the
/// WAL once instead of once per page of the listing; a crash loses only uncommitted pages,
/// which the next sync writes again.
const ROWS_PER_TRANSACTION: usize = 4_000;

/// Syncs every image type of `target`, one after the other. A type that fails does not stop
/// the others; only a database failure ends the target's sync early.
pub async fn sync_target(
    store: &Store,
    source: &Arc<dyn ImageSource>,
    target: &Target,
    page_size: u32,
    clock: &Clock,
) -> Result<Vec<SyncReport>, StoreError> {
    let mut reports = Vec::with_capacity(target.image_types.len());
    for image_type in &target.image_types {
        reports.push(sync_image_type(store, source, target, image_type, page_size, clock).await?);
    }
    Ok(reports)
}

/// What the store had of one image, and whether this listing has shown it.
struct Known {
    /// `None` for an image this sync inserted.
    row_id: Option<i64>,
    content_hash: i64,
    deleted: bool,
    listed: bool,
}

#[tracing::instrument(skip_all, fields(target = %target.name, image_type = %image_type))]
pub async fn sync_image_type(
    store: &Store,
    source: &Arc<dyn ImageSource>,
    target: &Target,
    image_type: &ImageType,
    page_size: u32,
    clock: &Clock,
) -> Result<SyncReport, StoreError> {
    let started_at = clock.now_ms();
    let run_id = store.start_sync_run(&target.name, image_type).await?;
    let mut notes = Vec::new();
    if target.trigger_swr_sync
        && let Err(err) = source.refresh(image_type).await
    {
        // The list HSS already has is still worth reading; the failure is reported.
        notes.push(format!("trigger_swr_sync: {err}"));
    }

    let loading = std::time::Instant::now();
    let known: HashMap<i64, Known> = store
        .known_images(&target.name, image_type)
        .await?
        .into_iter()
        .map(|(key, k)| {
            let known = Known {
                row_id: Some(k.row_id),
                content_hash: k.content_hash,
                deleted: k.deleted,
                listed: false,
            };
            (key, known)
        })
        .collect();
    tracing::debug!(
        known = known.len(),
        elapsed_ms = loading.elapsed().as_millis() as u64,
        "inventory index loaded"
    );
    let mut diff = InventoryDiff {
        store,
        target: &target.name,
        known,
        counts: SyncRunCounts::default(),
        queued: Vec::with_capacity(ROWS_PER_TRANSACTION + 200),
    };
    let listing = list_pages(source, image_type, page_size, &mut diff).await?;
    // Whatever was listed is written, complete or not: it is what HSS says now.
    diff.write_queued().await?;
    let InventoryDiff {
        known, mut counts, ..
    } = diff;

    let outcome = match listing {
        ListingEnd::Failed(err) => {
            notes.push(format!("listing failed: {err}"));
            SyncOutcome::Failed
        }
        ListingEnd::Partial(reason) => {
            notes.push(reason);
            SyncOutcome::Partial
        }
        ListingEnd::Complete => {
            let vanished: Vec<i64> = known
                .values()
                .filter(|k| !k.listed && !k.deleted)
                .filter_map(|k| k.row_id)
                .collect();
            if !vanished.is_empty() {
                counts.deleted = store.mark_deleted(&vanished).await? as i64;
            }
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
        started_at,
        outcome,
        counts,
        error,
        reconciled: None,
    })
}

/// How the listing ended.
enum ListingEnd {
    /// Every page, a steady `total_num`, and as many images as it announced.
    Complete,
    /// Pages were written, but the listing cannot be proved whole (the run is `partial`).
    Partial(String),
    /// Not even the first page came back.
    Failed(SourceError),
}

async fn list_pages(
    source: &Arc<dyn ImageSource>,
    image_type: &ImageType,
    page_size: u32,
    diff: &mut InventoryDiff<'_>,
) -> Result<ListingEnd, StoreError> {
    let request = |offset: u32| PageRequest {
        image_type: image_type.clone(),
        offset,
        limit: page_size,
    };
    let first = match source.page(&request(0)).await {
        Ok(page) => page,
        Err(err) => return Ok(ListingEnd::Failed(err)),
    };
    let Some(total) = first.total_num.filter(|t| *t >= 0) else {
        diff.absorb_page(first).await?;
        return Ok(ListingEnd::Partial(
            "HSS sent no readable total_num, so the listing cannot be proved complete".into(),
        ));
    };
    diff.counts.total_num = Some(total);
    diff.absorb_page(first).await?;

    // Later pages are fetched by their own tasks, so that requests and JSON parsing run while
    // the previous page is being written; `buffered` keeps them in order and bounded, and
    // dropping the stream (an early return) aborts the requests still in flight.
    let offsets = (u64::from(page_size)..total as u64)
        .step_by(page_size as usize)
        .map(|offset| u32::try_from(offset).unwrap_or(u32::MAX));
    let mut pages = futures::stream::iter(offsets)
        .map(|offset| {
            let source = Arc::clone(source);
            let page = request(offset);
            AbortOnDropHandle::new(tokio::spawn(async move { source.page(&page).await }))
        })
        .buffered(PAGE_CONCURRENCY);

    let mut drift = None;
    while let Some(joined) = pages.next().await {
        let page = match joined {
            Ok(Ok(page)) => page,
            Ok(Err(err)) => {
                return Ok(ListingEnd::Partial(format!(
                    "listing stopped after {} pages: {err}",
                    diff.counts.pages
                )));
            }
            Err(join) => {
                return Ok(ListingEnd::Partial(format!(
                    "listing stopped after {} pages: a page request failed: {join}",
                    diff.counts.pages
                )));
            }
        };
        if page.total_num != Some(total) && drift.is_none() {
            drift = Some(page.total_num);
        }
        diff.absorb_page(page).await?;
    }
    if let Some(now) = drift {
        let now = now.map_or_else(|| "unreadable".to_owned(), |n| n.to_string());
        return Ok(ListingEnd::Partial(format!(
            "total_num changed from {total} to {now} while listing; nothing was deleted"
        )));
    }
    if diff.counts.seen != total {
        return Ok(ListingEnd::Partial(format!(
            "HSS announced {total} images but listed {}; nothing was deleted",
            diff.counts.seen
        )));
    }
    Ok(ListingEnd::Complete)
}

/// One sync's comparison of the listing with the store: what the store had (two hashes and a
/// row id per image), the counts, and the images queued to be written.
struct InventoryDiff<'a> {
    store: &'a Store,
    target: &'a str,
    known: HashMap<i64, Known>,
    counts: SyncRunCounts,
    queued: Vec<PreparedImage>,
}

impl InventoryDiff<'_> {
    /// Compares a page with what the store knows; queues new, changed and returning images.
    async fn absorb_page(&mut self, page: ImagePage) -> Result<(), StoreError> {
        let counts = &mut self.counts;
        counts.pages += 1;
        counts.seen += page.images.len() as i64;
        counts.unreadable_fields += i64::from(page.unreadable_fields);
        for image in page.images {
            let prepared = PreparedImage::new(image);
            match self.known.get_mut(&prepared.key_hash) {
                // Listed twice in one sync (the list moved under us): already handled.
                Some(k) if k.listed => {}
                Some(k) => {
                    k.listed = true;
                    if k.deleted {
                        counts.restored += 1;
                        self.queued.push(prepared);
                    } else if k.content_hash != prepared.content_hash {
                        counts.changed += 1;
                        self.queued.push(prepared);
                    }
                }
                None => {
                    counts.new += 1;
                    let known = Known {
                        row_id: None,
                        content_hash: prepared.content_hash,
                        deleted: false,
                        listed: true,
                    };
                    self.known.insert(prepared.key_hash, known);
                    self.queued.push(prepared);
                }
            }
        }
        if self.queued.len() >= ROWS_PER_TRANSACTION {
            self.write_queued().await?;
        }
        Ok(())
    }

    /// Writes the queued images in one transaction.
    async fn write_queued(&mut self) -> Result<(), StoreError> {
        self.store.upsert_images(self.target, &self.queued).await?;
        self.queued.clear();
        Ok(())
    }
}
