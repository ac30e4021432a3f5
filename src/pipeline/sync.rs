//! Sync: page through HSS's image list for one target and image type, write what changed, and
//! close the run. It only reads HSS and writes the inventory; what the listing means for our
//! submissions is [`super::reconcile`]'s business, which the pipeline runs after a complete
//! sync.
//!
//! Three rules keep the inventory true when HSS misbehaves.
//! - A listing is complete only when every page came back without error with the same
//!   `total_num`, every record was well-formed and of the type asked for, no image was listed
//!   twice, and the distinct images listed number `total_num`. Anything less is a `partial`
//!   sync that deletes nothing: a server that ignores `offset` repeats images, one that mixes
//!   types lists foreign ones, and neither may make live images look deleted.
//! - Even a complete listing deletes at most `sync.max_delete_share` of the present images at
//!   once; a larger loss is held back until the next complete listing confirms it.
//! - Every listing is bounded: it stops at a short or empty page and at the API's offset
//!   limit, whatever `total_num` claims; and the list is never held in memory: pages stream
//!   from a bounded number of concurrent requests into transactions of a few thousand images,
//!   and only two hashes and a row id per known image are kept.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
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

/// How to sync (from `[hss]` and `[sync]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncOptions {
    /// Images per list call.
    pub page_size: u32,
    /// The largest share of a target's present images of one type a complete listing may
    /// delete at once; more is held back until the next complete listing confirms it.
    pub max_delete_share: f64,
}

/// Syncs every image type of `target`, one after the other. A type that fails does not stop
/// the others; only a database failure ends the target's sync early.
pub async fn sync_target(
    store: &Store,
    source: &Arc<dyn ImageSource>,
    target: &Target,
    options: SyncOptions,
    clock: &Clock,
) -> Result<Vec<SyncReport>, StoreError> {
    let mut reports = Vec::with_capacity(target.image_types.len());
    for image_type in &target.image_types {
        reports.push(sync_image_type(store, source, target, image_type, options, clock).await?);
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
    options: SyncOptions,
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
        image_type,
        known,
        counts: SyncRunCounts::default(),
        distinct: 0,
        doubts: Doubts::default(),
        queued: Vec::with_capacity(ROWS_PER_TRANSACTION + 200),
    };
    let listing = list_pages(source, image_type, options.page_size, &mut diff).await?;
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
            let present = known.values().filter(|k| k.row_id.is_some() && !k.deleted);
            let present = present.count();
            let vanished: Vec<i64> = known
                .values()
                .filter(|k| !k.listed && !k.deleted)
                .filter_map(|k| k.row_id)
                .collect();
            let deletions =
                delete_vanished(store, &target.name, image_type, vanished, present, options)
                    .await?;
            counts.deleted = deletions.deleted;
            counts.held = deletions.held;
            if let Some(note) = deletions.note {
                notes.push(note);
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
        held = counts.held,
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

/// What a complete listing did with the images it no longer showed.
struct Deletions {
    deleted: i64,
    held: i64,
    note: Option<String>,
}

/// Marks `vanished` deleted, unless they are more than `max_delete_share` of the `present`
/// images: then only those the previous complete listing already held back (and so confirmed
/// by this one) are deleted, and the rest are held back for the next one to confirm. A
/// listing that loses a fifth of an inventory at once is more likely HSS misbehaving than a
/// fifth of the registry deleted; a second complete listing saying the same settles it.
async fn delete_vanished(
    store: &Store,
    target: &str,
    image_type: &ImageType,
    vanished: Vec<i64>,
    present: usize,
    options: SyncOptions,
) -> Result<Deletions, StoreError> {
    let held_before: HashSet<i64> = store
        .held_deletions(target, image_type)
        .await?
        .into_iter()
        .collect();
    let limit = (present as f64 * options.max_delete_share).floor() as usize;
    let (delete, hold): (Vec<i64>, Vec<i64>) = if vanished.len() <= limit {
        (vanished, Vec::new())
    } else {
        vanished
            .into_iter()
            .partition(|id| held_before.contains(id))
    };
    let deleted = if delete.is_empty() {
        0
    } else {
        store.mark_deleted(&delete).await? as i64
    };
    // Replaced every time: what is held is exactly what this listing could not confirm.
    store.hold_deletions(target, image_type, &hold).await?;
    let note = (!hold.is_empty()).then(|| {
        let note = format!(
            "{} of {present} present images vanished, more than sync.max_delete_share ({}) \
             allows at once: their deletion is held back until the next complete listing \
             confirms it",
            hold.len() + delete.len(),
            options.max_delete_share
        );
        tracing::warn!(target, image_type = %image_type, held = hold.len(), "{note}");
        note
    });
    Ok(Deletions {
        deleted,
        held: hold.len() as i64,
        note,
    })
}

/// How the listing ended.
enum ListingEnd {
    /// Every page, a steady `total_num`, well-formed records of the type asked for, no image
    /// twice, and as many images as it announced.
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
    let first_len = first.images.len();
    diff.absorb_page(first).await?;
    if let Some(short) = short_page(0, first_len, page_size, total) {
        return Ok(ListingEnd::Partial(short));
    }

    // Later pages are fetched by their own tasks, so that requests and JSON parsing run while
    // the previous page is being written; `buffered` keeps them in order and bounded, and
    // dropping the stream (an early return) aborts the requests still in flight. However
    // large `total_num` is, no offset beyond the API's limit is asked for.
    let max_offset = u64::from(source.max_offset());
    let beyond_reach = total as u64 > max_offset + u64::from(page_size);
    let last = (total as u64).min(max_offset + 1);
    let offsets = (u64::from(page_size)..last)
        .step_by(page_size as usize)
        .map(|offset| u32::try_from(offset).unwrap_or(u32::MAX));
    let mut pages = futures::stream::iter(offsets)
        .map(|offset| {
            let source = Arc::clone(source);
            let page = request(offset);
            let fetched =
                AbortOnDropHandle::new(tokio::spawn(async move { source.page(&page).await }));
            fetched.map(move |result| (offset, result))
        })
        .buffered(PAGE_CONCURRENCY);

    let mut drift = None;
    while let Some((offset, joined)) = pages.next().await {
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
        let len = page.images.len();
        diff.absorb_page(page).await?;
        if let Some(short) = short_page(offset, len, page_size, total) {
            return Ok(ListingEnd::Partial(short));
        }
    }
    if let Some(now) = drift {
        let now = now.map_or_else(|| "unreadable".to_owned(), |n| n.to_string());
        return Ok(ListingEnd::Partial(format!(
            "total_num changed from {total} to {now} while listing; nothing was deleted"
        )));
    }
    if beyond_reach {
        return Ok(ListingEnd::Partial(format!(
            "HSS announced {total} images, more than its list API pages through (offset at \
             most {max_offset}); nothing was deleted"
        )));
    }
    if let Some(doubt) = diff.doubts.describe() {
        return Ok(ListingEnd::Partial(format!(
            "{doubt}; the listing cannot be trusted and nothing was deleted"
        )));
    }
    if diff.distinct != total {
        return Ok(ListingEnd::Partial(format!(
            "HSS announced {total} images but listed {} distinct ones; nothing was deleted",
            diff.distinct
        )));
    }
    Ok(ListingEnd::Complete)
}

/// Why a page that holds fewer images than its place in the listing calls for ends the
/// listing there; `None` for a full page, or the last one.
fn short_page(offset: u32, len: usize, page_size: u32, total: i64) -> Option<String> {
    let expected = (total - i64::from(offset)).clamp(0, i64::from(page_size));
    ((len as i64) < expected).then(|| {
        format!(
            "the page at offset {offset} held {len} images where {expected} were due; the \
             listing stops there and nothing was deleted"
        )
    })
}

/// Records that make a listing untrustworthy, counted by kind; the first of each is
/// described.
#[derive(Debug, Default)]
struct Doubts {
    /// Of another image type than the one asked for (not written).
    foreign: u64,
    /// Without a namespace, name or tag (or, for a third-party image, its registry): an
    /// image that cannot be identified (not written).
    unidentified: u64,
    /// Listed twice in one listing.
    repeated: u64,
    examples: Vec<String>,
}

impl Doubts {
    fn note(&mut self, example: impl FnOnce() -> String) {
        if self.examples.len() < 3 {
            self.examples.push(example());
        }
    }

    fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.foreign > 0 {
            parts.push(format!("{} records of another image type", self.foreign));
        }
        if self.unidentified > 0 {
            parts.push(format!(
                "{} records without their identifying fields",
                self.unidentified
            ));
        }
        if self.repeated > 0 {
            parts.push(format!("{} images listed twice", self.repeated));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "HSS listed {} (e.g. {})",
                parts.join(", "),
                self.examples.join("; ")
            )
        })
    }
}

/// One sync's comparison of the listing with the store: what the store had (two hashes and a
/// row id per image), the counts, what makes the listing doubtful, and the images queued to be
/// written.
struct InventoryDiff<'a> {
    store: &'a Store,
    target: &'a str,
    image_type: &'a ImageType,
    known: HashMap<i64, Known>,
    counts: SyncRunCounts,
    /// Distinct, well-formed images of the type asked for.
    distinct: i64,
    doubts: Doubts,
    queued: Vec<PreparedImage>,
}

impl InventoryDiff<'_> {
    /// Compares a page with what the store knows; queues new, changed and returning images.
    /// Records that cannot be trusted are counted and never written.
    async fn absorb_page(&mut self, page: ImagePage) -> Result<(), StoreError> {
        let counts = &mut self.counts;
        counts.pages += 1;
        counts.seen += page.images.len() as i64;
        counts.unreadable_fields += i64::from(page.unreadable_fields);
        for image in page.images {
            if image.image_type != *self.image_type {
                self.doubts.foreign += 1;
                self.doubts.note(|| {
                    format!(
                        "{}/{}:{} is {}",
                        image.namespace, image.image_name, image.image_version, image.image_type
                    )
                });
                continue;
            }
            let unidentified = image.namespace.is_empty()
                || image.image_name.is_empty()
                || image.image_version.is_empty()
                || (image.image_type.is_third_party() && image.registry_id.is_empty());
            if unidentified {
                self.doubts.unidentified += 1;
                self.doubts.note(|| {
                    format!(
                        "record {} named {:?}/{:?}:{:?}",
                        image
                            .hss_record_id
                            .map_or_else(|| "without an id".to_owned(), |id| id.to_string()),
                        image.namespace,
                        image.image_name,
                        image.image_version
                    )
                });
                continue;
            }
            let prepared = PreparedImage::new(image);
            match self.known.get_mut(&prepared.key_hash) {
                Some(k) if k.listed => {
                    self.doubts.repeated += 1;
                    let i = &prepared.image;
                    self.doubts.note(|| {
                        format!("{}/{}:{} twice", i.namespace, i.image_name, i.image_version)
                    });
                }
                Some(k) => {
                    k.listed = true;
                    self.distinct += 1;
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
                    self.distinct += 1;
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
