//! Reconciliation: after a complete sync of a target and type, move our open submissions of
//! it on from what HSS now shows. Only a complete full listing can say that an image vanished
//! or that a batch whose answer never came was never received.
//!
//! A complete incremental listing moves submissions on too, from what it did read: an image
//! whose scan finished shows a new scan time and is in its scan window, which reaches back to
//! our oldest open submission. What it did not read it knows nothing about, so after it an
//! image that looks unmoved is never judged lost — the store simply has not heard of it
//! since — and it waits for the next full listing, which [`super::listing`] makes the next
//! sync once such a submission's grace is over.
//!
//! The protocol, from the item's point of view: when a batch is recorded, each item keeps the
//! image as it was (`status_before`, `scan_time_before`) and our previous submission time. A
//! sync that started at least `submit_grace` after the submission and still shows exactly
//! that, for a batch whose answer never came, proves HSS never received it (`lost`: the image
//! gets its earlier submission time back and is due again under its old reason). A finished
//! status closes the item as `success` or `failed`; a vanished image closes it as `vanished`.
//! Anything else stays open until a later sync, or `scanning_timeout`, decides.
//!
//! An unanswered batch recorded under an earlier term of the leader lease is judged later
//! still. Its holder may be alive but paused (SIGSTOP, a frozen VM) between its last lease
//! check and the wire; waking, it sends the request it already signed. Nothing on our side
//! can stop that, but HSS's gateway refuses a request whose `X-Sdk-Date` is more than
//! `hss.signed_request_lifetime` (15 minutes) old, and every request is signed before its
//! lease check. So once that long has passed since the lease changed hands, such a batch
//! either reached HSS (and its images moved) or never will.

use std::time::Duration;

use super::report::Reconciled;
use crate::domain::clock::ms;
use crate::domain::{ImageType, ScanStatus};
use crate::store::{BatchStatus, ItemOutcome, OPEN_ITEMS_PER_PAGE, OpenItem, Store, StoreError};

/// When an unanswered batch can first be judged never received.
#[derive(Debug, Clone, Copy)]
pub struct LostAfter {
    /// `policy.submit_grace`: how long HSS may take to show that it received a batch.
    pub submit_grace: Duration,
    /// `hss.signed_request_lifetime`: how long a request signed by an earlier lease holder
    /// may still arrive.
    pub signed_request_lifetime: Duration,
    /// The lease's current term and when that term began (ms); `None` before any lease.
    pub lease: Option<(i64, i64)>,
}

impl LostAfter {
    /// The rules as they stand now: the lease is read afresh, since it may have changed hands
    /// since the sync began.
    pub async fn read(
        store: &Store,
        submit_grace: Duration,
        signed_request_lifetime: Duration,
    ) -> Result<LostAfter, StoreError> {
        let lease = store.lease().await?.map(|l| (l.term, l.acquired_at));
        Ok(LostAfter {
            submit_grace,
            signed_request_lifetime,
            lease,
        })
    }

    /// The earliest start of a sync that may judge `item` lost: its grace after the
    /// submission, and, for a batch of an earlier lease term, the lifetime of a signed
    /// request after the current term began (the earlier one ended no later).
    pub fn from(&self, item: &OpenItem) -> i64 {
        let after_grace = item.submitted_at.saturating_add(ms(self.submit_grace));
        match (item.batch_term, self.lease) {
            (Some(batch_term), Some((term, began))) if batch_term < term => {
                after_grace.max(began.saturating_add(ms(self.signed_request_lifetime)))
            }
            _ => after_grace,
        }
    }
}

/// What a complete sync read: every image, or only those in its windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Everything,
    Changes,
}

/// The outcome of an open item, judged by a complete sync of its target and type that
/// started at `sync_started_at` and read `seen`; `None` while it is still open.
pub fn decide(
    item: &OpenItem,
    sync_started_at: i64,
    lost_after: &LostAfter,
    seen: Seen,
) -> Option<ItemOutcome> {
    if item.deleted {
        return Some(ItemOutcome::Vanished);
    }
    // A sync that started too soon may show the image as it was before HSS took the batch.
    if sync_started_at
        < item
            .submitted_at
            .saturating_add(ms(lost_after.submit_grace))
    {
        return None;
    }
    let unchanged =
        item.scan_status == item.status_before && item.latest_scan_time == item.scan_time_before;
    if unchanged {
        // An unanswered batch whose images did not move was never received. An accepted one
        // that did not move is left to `scanning_timeout`, rather than paid for again now.
        // Unmoved is only proved by a listing of every image, and only once nobody can
        // still send the batch.
        return (item.batch_status == BatchStatus::Pending
            && seen == Seen::Everything
            && sync_started_at >= lost_after.from(item))
        .then_some(ItemOutcome::Lost);
    }
    match item.scan_status {
        ScanStatus::Success => Some(ItemOutcome::Success),
        ref status if status.is_finished() => Some(ItemOutcome::Failed),
        _ => None,
    }
}

/// Moves the submissions of one target and type on, from a complete sync that started at
/// `sync_started_at` and read `seen`.
#[tracing::instrument(skip_all, err, fields(target, image_type = %image_type))]
pub async fn reconcile(
    store: &Store,
    target: &str,
    image_type: &ImageType,
    sync_started_at: i64,
    submit_grace: Duration,
    signed_request_lifetime: Duration,
    seen: Seen,
) -> Result<Reconciled, StoreError> {
    let mut done = Reconciled::default();
    let lost_after = LostAfter::read(store, submit_grace, signed_request_lifetime).await?;
    // A page at a time, each page's outcomes in a transaction of their own: every item is
    // judged on its own, and one the process stops before closing is judged again next time.
    let mut pages = store.open_item_pages(target, image_type, OPEN_ITEMS_PER_PAGE);
    let mut closed = 0;
    while let Some(page) = pages.next_page().await? {
        let mut closing = Vec::new();
        for item in page {
            match decide(&item, sync_started_at, &lost_after, seen) {
                None => done.still_open += 1,
                Some(outcome) => {
                    match outcome {
                        ItemOutcome::Success => done.success += 1,
                        ItemOutcome::Failed => done.failed += 1,
                        ItemOutcome::Lost => done.lost += 1,
                        ItemOutcome::Vanished => done.vanished += 1,
                    }
                    if matches!(outcome, ItemOutcome::Success | ItemOutcome::Failed) {
                        let took = sync_started_at.saturating_sub(item.submitted_at).max(0);
                        done.completion_times
                            .push(Duration::from_millis(u64::try_from(took).unwrap_or(0)));
                    }
                    closing.push((item, outcome));
                }
            }
        }
        store.close_items(&closing).await?;
        closed += closing.len();
    }
    if closed > 0 {
        tracing::info!(
            success = done.success,
            failed = done.failed,
            lost = done.lost,
            vanished = done.vanished,
            still_open = done.still_open,
            "submissions reconciled"
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(
        batch_status: BatchStatus,
        before: (&str, Option<i64>),
        now: (&str, Option<i64>),
    ) -> OpenItem {
        OpenItem {
            item_id: 1,
            image_row_id: 1,
            batch_id: 1,
            batch_status,
            submitted_at: 1_000_000,
            status_before: before.0.into(),
            scan_time_before: before.1,
            scan_status: now.0.into(),
            latest_scan_time: now.1,
            deleted: false,
            batch_term: None,
        }
    }

    const GRACE: Duration = Duration::from_secs(120);
    const RULES: LostAfter = LostAfter {
        submit_grace: GRACE,
        signed_request_lifetime: Duration::from_secs(900),
        lease: None,
    };
    const LATE: i64 = 1_000_000 + 120_000;
    const EARLY: i64 = 1_000_000 + 119_999;

    #[test]
    fn reconciliation_table() {
        let cases = [
            (
                "too early to tell",
                item(BatchStatus::Pending, ("unscan", None), ("unscan", None)),
                EARLY,
                None,
            ),
            (
                "unanswered and unmoved: lost",
                item(BatchStatus::Pending, ("unscan", None), ("unscan", None)),
                LATE,
                Some(ItemOutcome::Lost),
            ),
            (
                "accepted and unmoved: wait",
                item(BatchStatus::Sent, ("unscan", None), ("unscan", None)),
                LATE,
                None,
            ),
            (
                "unanswered but queued: received",
                item(
                    BatchStatus::Pending,
                    ("unscan", None),
                    ("waiting_for_scan", None),
                ),
                LATE,
                None,
            ),
            (
                "scanned to success",
                item(BatchStatus::Sent, ("unscan", None), ("success", Some(5))),
                LATE,
                Some(ItemOutcome::Success),
            ),
            (
                "rescanned: a new time",
                item(
                    BatchStatus::Pending,
                    ("success", Some(1)),
                    ("success", Some(9)),
                ),
                LATE,
                Some(ItemOutcome::Success),
            ),
            (
                "scan failed",
                item(BatchStatus::Sent, ("success", Some(1)), ("failed", Some(1))),
                LATE,
                Some(ItemOutcome::Failed),
            ),
            (
                "still scanning",
                item(BatchStatus::Sent, ("unscan", None), ("scanning", None)),
                LATE,
                None,
            ),
            (
                "failed again, same time, accepted: wait for the timeout",
                item(BatchStatus::Sent, ("failed", Some(3)), ("failed", Some(3))),
                LATE,
                None,
            ),
        ];
        for (name, item, sync_started, want) in cases {
            assert_eq!(
                decide(&item, sync_started, &RULES, Seen::Everything),
                want,
                "{name}"
            );
            // An incremental listing decides the same, except that it never proves a loss.
            let incremental = want.filter(|outcome| *outcome != ItemOutcome::Lost);
            assert_eq!(
                decide(&item, sync_started, &RULES, Seen::Changes),
                incremental,
                "{name}, incremental"
            );
        }
        let mut gone = item(BatchStatus::Sent, ("unscan", None), ("unscan", None));
        gone.deleted = true;
        assert_eq!(
            decide(&gone, EARLY, &RULES, Seen::Everything),
            Some(ItemOutcome::Vanished)
        );
    }

    #[test]
    fn a_batch_of_an_earlier_lease_term_is_lost_only_once_its_signature_has_expired() {
        let mut unmoved = item(BatchStatus::Pending, ("unscan", None), ("unscan", None));
        unmoved.batch_term = Some(3);
        // The lease passed to term 4 at 1_030_000, 30 s after the batch was recorded.
        let taken_over = 1_030_000;
        let lifetime = 900_000;
        let rules = LostAfter {
            lease: Some((4, taken_over)),
            ..RULES
        };
        let expires = taken_over + lifetime;
        assert_eq!(rules.from(&unmoved), expires);
        for (started, want) in [
            (LATE, None),
            (expires - 1, None),
            (expires, Some(ItemOutcome::Lost)),
        ] {
            assert_eq!(
                decide(&unmoved, started, &rules, Seen::Everything),
                want,
                "a sync at {started}"
            );
        }
        // A batch of the current term (this process's, or a holder still renewing) waits
        // only for its grace; so does one recorded before there were leases.
        for term in [Some(4), None] {
            unmoved.batch_term = term;
            assert_eq!(rules.from(&unmoved), 1_000_000 + 120_000, "{term:?}");
            assert_eq!(
                decide(&unmoved, LATE, &rules, Seen::Everything),
                Some(ItemOutcome::Lost),
                "{term:?}"
            );
        }
        // What moved was received, whoever sent it.
        let mut moved = item(
            BatchStatus::Pending,
            ("unscan", None),
            ("waiting_for_scan", None),
        );
        moved.batch_term = Some(3);
        moved.scan_status = "success".into();
        moved.latest_scan_time = Some(5);
        assert_eq!(
            decide(&moved, LATE, &rules, Seen::Everything),
            Some(ItemOutcome::Success)
        );
    }
}
