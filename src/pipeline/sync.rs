//! Sync: page through HSS's image list for one target and image type, write what changed, and
//! close the run. It only reads HSS and writes the inventory; what the listing means for our
//! submissions is [`super::reconcile`]'s business, which the pipeline runs after a complete
//! sync.
//!
//! A sync lists every image (a full listing) or, between two full listings on the current
//! API, only the images whose update, sync or scan time lies in a window since the previous
//! sync (an incremental listing); [`super::listing`] decides which, and why. An incremental
//! listing is three filtered listings, one per window, each held to the rules below on its
//! own (`total_num` is per filter), and an image two windows list is written once. It never
//! deletes: absence from a window proves nothing. A full listing after incremental ones also
//! counts the changes they missed.
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

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio_util::task::AbortOnDropHandle;

mod known;

use self::known::KnownImages;
use super::listing::{self, ListingMemory, MissCheck, Plan};
use super::reconcile::LostAfter;
use super::report::SyncReport;
use crate::config::{IncrementalListing, Settings};
use crate::domain::Image;
use crate::domain::{Clock, ImageType, Target};
use crate::hss::{ChangeWindow, ImagePage, ImageSource, PageRequest, SourceError};
use crate::store::{
    ListingKind, OPEN_ITEMS_PER_PAGE, PreparedImage, Store, StoreError, SyncOutcome, SyncRunCounts,
};

/// Pages in flight at once. The client's rate limit still applies; this only bounds memory
/// and lets parsing overlap with writing.
pub const PAGE_CONCURRENCY: usize = 4;

/// Images written per transaction. Larger transactions write each touched index page to the
/// WAL once instead of once per page of the listing; a crash loses only uncommitted pages,
/// which the next sync writes again.
const ROWS_PER_TRANSACTION: usize = 4_000;

/// The most images a first full listing reserves room for in advance, from HSS's
/// `total_num`. The index's entries and hash slots are touched only as images arrive, but
/// its control bytes (one per slot, 2^23 slots here) are written at once: a wrong count
/// costs at most 8 MB.
const MAX_RESERVED_IMAGES: usize = 1 << 22;

/// How to sync (from `[hss]`, `[sync]` and `[policy]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncOptions {
    /// Images per list call.
    pub page_size: u32,
    /// The largest share of a target's present images of one type a complete listing may
    /// delete at once; more is held back until the next complete listing confirms it.
    pub max_delete_share: f64,
    /// Whether syncs between full listings list only what changed.
    pub incremental: IncrementalListing,
    /// How far an incremental window reaches back before the previous sync's start.
    pub overlap: Duration,
    /// A full listing at least this often.
    pub full_every: Duration,
    /// How long HSS may take to show it received a submission (`policy.submit_grace`).
    pub submit_grace: Duration,
    /// How long a submission is followed (`policy.scanning_timeout`).
    pub scanning_timeout: Duration,
    /// How long an earlier lease holder's signed scan call may still arrive
    /// (`hss.signed_request_lifetime`).
    pub signed_request_lifetime: Duration,
}

impl SyncOptions {
    /// The options `settings` give.
    pub fn from_settings(settings: &Settings) -> SyncOptions {
        SyncOptions {
            page_size: settings.hss.page_size,
            max_delete_share: settings.sync.max_delete_share,
            incremental: settings.sync.incremental,
            overlap: settings.sync.overlap,
            full_every: settings.sync.full_every,
            submit_grace: settings.policy.submit_grace,
            scanning_timeout: settings.policy.scanning_timeout,
            signed_request_lifetime: settings.hss.signed_request_lifetime,
        }
    }
}

/// Syncs every image type of `target`, one after the other. A type that fails does not stop
/// the others; only a database failure ends the target's sync early.
pub async fn sync_target(
    store: &Store,
    source: &Arc<dyn ImageSource>,
    target: &Target,
    options: SyncOptions,
    clock: &Clock,
    memory: &ListingMemory,
) -> Result<Vec<SyncReport>, StoreError> {
    let mut reports = Vec::with_capacity(target.image_types.len());
    for image_type in &target.image_types {
        let report =
            sync_image_type(store, source, target, image_type, options, clock, memory).await?;
        reports.push(report);
    }
    Ok(reports)
}

/// Decides how this sync of `target` and `image_type` lists (see [`super::listing`]).
async fn plan_listing(
    store: &Store,
    source: &Arc<dyn ImageSource>,
    target: &Target,
    image_type: &ImageType,
    options: SyncOptions,
    memory: &ListingMemory,
    now: i64,
) -> Result<Plan, StoreError> {
    let first_of_process = memory.first_listing(&target.name, image_type);
    let lists_changes = source.lists_changes();
    if !lists_changes
        && !first_of_process
        && options.incremental != IncrementalListing::Off
        && memory.tell_no_filters(&target.name)
    {
        tracing::debug!(
            target = %target.name,
            "the deprecated API has no time filters: every sync of this target is a full listing"
        );
    }
    let history = store.listing_history(&target.name, image_type).await?;
    // Reading the open items costs a query; only a sync that could be incremental needs them.
    let could_be_incremental =
        lists_changes && !first_of_process && options.incremental != IncrementalListing::Off;
    // What the plan needs of the open items is two numbers, read a page at a time.
    let mut unsettled = 0;
    let mut oldest_in_flight = None;
    if could_be_incremental {
        let lost_after =
            LostAfter::read(store, options.submit_grace, options.signed_request_lifetime).await?;
        let mut pages = store.open_item_pages(&target.name, image_type, OPEN_ITEMS_PER_PAGE);
        while let Some(open) = pages.next_page().await? {
            unsettled += listing::unsettled(&open, history.last_complete_full, now, &lost_after);
            let submitted = open.iter().map(|item| item.submitted_at);
            oldest_in_flight = submitted.chain(oldest_in_flight).min();
        }
    }
    Ok(listing::plan(&listing::Inputs {
        setting: options.incremental,
        lists_changes,
        first_of_process,
        fell_back: memory.fell_back(&target.name),
        history: &history,
        now,
        overlap: options.overlap,
        full_every: options.full_every,
        unsettled,
        oldest_in_flight,
        scanning_timeout: options.scanning_timeout,
    }))
}

#[tracing::instrument(skip_all, fields(target = %target.name, image_type = %image_type))]
pub async fn sync_image_type(
    store: &Store,
    source: &Arc<dyn ImageSource>,
    target: &Target,
    image_type: &ImageType,
    options: SyncOptions,
    clock: &Clock,
    memory: &ListingMemory,
) -> Result<SyncReport, StoreError> {
    let started_at = clock.now_ms();
    let plan = plan_listing(
        store, source, target, image_type, options, memory, started_at,
    )
    .await?;
    let run_id = store.start_sync_run(&target.name, image_type).await?;
    store.record_sync_listing(run_id, &plan.record(0)).await?;
    let mut notes = Vec::new();
    if target.trigger_swr_sync
        && let Err(err) = source.refresh(image_type).await
    {
        // The list HSS already has is still worth reading; the failure is reported.
        notes.push(format!("trigger_swr_sync: {err}"));
    }

    let (known, check) = match &plan {
        Plan::Full { check, .. } => {
            let loading = std::time::Instant::now();
            let known = load_known(store, &target.name, image_type).await?;
            tracing::debug!(
                known = known.len(),
                elapsed_ms = loading.elapsed().as_millis() as u64,
                "inventory index loaded"
            );
            (known, check.clone())
        }
        // An incremental listing looks up only the images it lists, page by page.
        Plan::Incremental { .. } => (KnownImages::new(), None),
    };
    let mut diff = InventoryDiff {
        store,
        target: &target.name,
        image_type,
        known,
        look_up: matches!(plan, Plan::Incremental { .. }),
        listing: 1,
        counts: SyncRunCounts::default(),
        distinct: 0,
        doubts: Doubts::default(),
        queued: Vec::with_capacity(ROWS_PER_TRANSACTION + 200),
        check,
        suspects: Vec::new(),
    };
    let listing = match &plan {
        Plan::Full { .. } => {
            list_pages(source, image_type, options.page_size, None, &mut diff).await?
        }
        Plan::Incremental { windows, .. } => {
            list_windows(source, image_type, options.page_size, windows, &mut diff).await?
        }
    };
    // Whatever was listed is written, complete or not: it is what HSS says now.
    diff.write_queued().await?;
    let InventoryDiff {
        known,
        mut counts,
        check,
        ..
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
        // Only a listing of every image can show that one is gone.
        ListingEnd::Complete if plan.kind() == ListingKind::Incremental => SyncOutcome::Complete,
        ListingEnd::Complete => {
            let present = known.present();
            let vanished = known.unlisted();
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
    let missed = check.as_ref().map_or(0, |c| c.missed);
    if let Some(check) = check.as_ref().filter(|c| c.missed > 0) {
        let falls_back = options.incremental == IncrementalListing::Auto;
        if falls_back {
            memory.fall_back(&target.name, check.missed);
        }
        tracing::warn!(
            target = %target.name,
            image_type = %image_type,
            missed = check.missed,
            incremental_listings = check.listings,
            examples = %check.examples.join(", "),
            "this full listing found {} change(s) that the incremental listings since the \
             previous full listing should have read and did not (e.g. {}); {}",
            check.missed,
            check.examples.join(", "),
            if falls_back {
                "this target lists fully until hss-scand restarts (sync.incremental = \"auto\")"
            } else {
                "incremental listing stays on (sync.incremental = \"on\")"
            }
        );
    }
    let recorded = plan.record(missed);
    store.record_sync_listing(run_id, &recorded).await?;
    let error = (!notes.is_empty()).then(|| notes.join("; "));
    store
        .finish_sync_run(run_id, outcome, &counts, error.as_deref())
        .await?;
    tracing::info!(
        run = run_id,
        outcome = outcome.as_str(),
        listing = recorded.kind.as_str(),
        listing_reason = recorded.reason.as_str(),
        pages = counts.pages,
        total = counts.total_num,
        seen = counts.seen,
        new = counts.new,
        changed = counts.changed,
        restored = counts.restored,
        deleted = counts.deleted,
        held = counts.held,
        missed,
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
        listing: recorded,
        reconciled: None,
    })
}

/// Everything the store knows of a target and type, for a full listing to compare with.
async fn load_known(
    store: &Store,
    target: &str,
    image_type: &ImageType,
) -> Result<KnownImages, StoreError> {
    KnownImages::from_stored(store.known_images(target, image_type).await?)
}

/// The windows of an incremental listing, one filtered listing each, in order; the first
/// that does not complete ends the sync (partial, or failed if nothing was listed).
async fn list_windows(
    source: &Arc<dyn ImageSource>,
    image_type: &ImageType,
    page_size: u32,
    windows: &[ChangeWindow],
    diff: &mut InventoryDiff<'_>,
) -> Result<ListingEnd, StoreError> {
    for (n, window) in windows.iter().enumerate() {
        diff.start_listing(u8::try_from(n + 1).unwrap_or(u8::MAX));
        let field = window.time.field();
        match list_pages(source, image_type, page_size, Some(*window), diff).await? {
            ListingEnd::Complete => {}
            ListingEnd::Failed(err) if n == 0 => return Ok(ListingEnd::Failed(err)),
            ListingEnd::Failed(err) => {
                return Ok(ListingEnd::Partial(format!(
                    "the {field} window could not be listed: {err}"
                )));
            }
            ListingEnd::Partial(reason) => {
                return Ok(ListingEnd::Partial(format!("the {field} window: {reason}")));
            }
        }
    }
    Ok(ListingEnd::Complete)
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

/// One listing, every image or those in `window`, paged to its end (see the module doc for
/// when it is complete).
async fn list_pages(
    source: &Arc<dyn ImageSource>,
    image_type: &ImageType,
    page_size: u32,
    window: Option<ChangeWindow>,
    diff: &mut InventoryDiff<'_>,
) -> Result<ListingEnd, StoreError> {
    let request = |offset: u32| PageRequest {
        image_type: image_type.clone(),
        offset,
        limit: page_size,
        window,
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
    // An incremental sync's total is the sum of its windows' (an image in two counts twice).
    diff.counts.total_num = Some(diff.counts.total_num.unwrap_or(0) + total);
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

/// One sync's comparison of its listings with the store: what the store had (two hashes and
/// a row id per image), the counts, what makes a listing doubtful, the images queued to be
/// written, and the self-check's suspects.
struct InventoryDiff<'a> {
    store: &'a Store,
    target: &'a str,
    image_type: &'a ImageType,
    known: KnownImages,
    /// `known` starts empty and each page's images are looked up (an incremental listing).
    look_up: bool,
    /// The number of the listing being read (1 for a full listing, 1..=3 for the windows).
    listing: u8,
    counts: SyncRunCounts,
    /// Distinct, well-formed images of the type asked for, in the listing being read.
    distinct: i64,
    doubts: Doubts,
    queued: Vec<PreparedImage>,
    /// A full listing's check of the incremental listings before it.
    check: Option<MissCheck>,
    /// Queued images that changed, with a time early enough to be a missed change: judged
    /// against their stored times right before they are written over.
    suspects: Vec<(i64, Image)>,
}

impl InventoryDiff<'_> {
    /// The next listing of this sync (a window) starts: an image it lists again is not
    /// listed twice, unless it lists it twice itself.
    fn start_listing(&mut self, listing: u8) {
        self.listing = listing;
        self.distinct = 0;
    }

    /// Compares a page with what the store knows; queues new, changed and returning images.
    /// Records that cannot be trusted are counted and never written.
    async fn absorb_page(&mut self, page: ImagePage) -> Result<(), StoreError> {
        // A first full listing learns how many images to expect from its first page. An index
        // sized for them at once never holds its old and new tables together while it grows,
        // which at a million images was 40 MB of peak. `total_num` is HSS's word, so it only
        // sizes the index up to a bound; past it the index grows as it would anyway.
        if self.counts.pages == 0 && self.known.is_empty() && !self.look_up {
            let expected = page.total_num.and_then(|n| usize::try_from(n).ok());
            self.known
                .reserve(expected.unwrap_or(0).min(MAX_RESERVED_IMAGES));
        }
        let counts = &mut self.counts;
        counts.pages += 1;
        counts.seen += page.images.len() as i64;
        counts.unreadable_fields += i64::from(page.unreadable_fields);
        let mut trusted = Vec::with_capacity(page.images.len());
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
            trusted.push(PreparedImage::new(image));
        }
        if self.look_up {
            self.look_up_page(&trusted).await?;
        }
        let counts = &mut self.counts;
        for prepared in trusted {
            match self.known.find(prepared.key_hash) {
                Some(k) if k.listed_in() == self.listing => {
                    self.doubts.repeated += 1;
                    let i = &prepared.image;
                    self.doubts.note(|| {
                        format!("{}/{}:{} twice", i.namespace, i.image_name, i.image_version)
                    });
                }
                // Another window of this sync listed it already, and it was written as that
                // window showed it; a change since then falls in the next sync's windows.
                Some(k) if k.listed_in() != 0 => self.distinct += 1,
                Some(k) => {
                    k.set_listed_in(self.listing);
                    self.distinct += 1;
                    let changed = k.content_hash() != prepared.content_hash;
                    if k.deleted() || changed {
                        if k.deleted() {
                            counts.restored += 1;
                        } else {
                            counts.changed += 1;
                        }
                        if let (Some(check), Some(row_id)) = (&self.check, k.row_id())
                            && check.could_have_missed(&prepared.image)
                        {
                            self.suspects.push((row_id, prepared.image.clone()));
                        }
                        self.queued.push(prepared);
                    }
                }
                None => {
                    counts.new += 1;
                    self.distinct += 1;
                    if let Some(check) = &mut self.check {
                        check.judge(&prepared.image, None);
                    }
                    self.known.insert_new(
                        prepared.key_hash,
                        prepared.content_hash,
                        self.listing,
                    )?;
                    self.queued.push(prepared);
                }
            }
        }
        if self.queued.len() >= ROWS_PER_TRANSACTION {
            self.write_queued().await?;
        }
        Ok(())
    }

    /// Adds what the store has of the page's images that this sync has not seen yet.
    async fn look_up_page(&mut self, page: &[PreparedImage]) -> Result<(), StoreError> {
        let unseen: Vec<i64> = page
            .iter()
            .map(|p| p.key_hash)
            .filter(|&key| !self.known.contains(key))
            .collect();
        let found = self
            .store
            .known_images_by_key(self.target, self.image_type, &unseen)
            .await?;
        for (key, k) in found {
            self.known.insert_stored(key, k)?;
        }
        Ok(())
    }

    /// Writes the queued images in one transaction, after the self-check has judged the
    /// suspects among them against what they replace.
    async fn write_queued(&mut self) -> Result<(), StoreError> {
        if let Some(check) = &mut self.check
            && !self.suspects.is_empty()
        {
            let rows: Vec<i64> = self.suspects.iter().map(|(row, _)| *row).collect();
            let stored = self.store.stored_times(&rows).await?;
            for (row, image) in self.suspects.drain(..) {
                check.judge(&image, Some(&stored.get(&row).copied().unwrap_or_default()));
            }
        }
        self.store
            .upsert_images(self.target, &mut self.queued)
            .await
    }
}
