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

use std::time::Duration;

use super::report::Reconciled;
use crate::domain::clock::ms;
use crate::domain::{ImageType, ScanStatus};
use crate::store::{BatchStatus, ItemOutcome, OpenItem, Store, StoreError};

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
    submit_grace: Duration,
    seen: Seen,
) -> Option<ItemOutcome> {
    if item.deleted {
        return Some(ItemOutcome::Vanished);
    }
    // A sync that started too soon may show the image as it was before HSS took the batch.
    if sync_started_at < item.submitted_at.saturating_add(ms(submit_grace)) {
        return None;
    }
    let unchanged =
        item.scan_status == item.status_before && item.latest_scan_time == item.scan_time_before;
    if unchanged {
        // An unanswered batch whose images did not move was never received. An accepted one
        // that did not move is left to `scanning_timeout`, rather than paid for again now.
        // Unmoved is only proved by a listing of every image.
        return (item.batch_status == BatchStatus::Pending && seen == Seen::Everything)
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
    seen: Seen,
) -> Result<Reconciled, StoreError> {
    let mut done = Reconciled::default();
    let mut closing = Vec::new();
    for item in store.open_items(target, image_type).await? {
        match decide(&item, sync_started_at, submit_grace, seen) {
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
    if !closing.is_empty() {
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
        }
    }

    const GRACE: Duration = Duration::from_secs(120);
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
                decide(&item, sync_started, GRACE, Seen::Everything),
                want,
                "{name}"
            );
            // An incremental listing decides the same, except that it never proves a loss.
            let incremental = want.filter(|outcome| *outcome != ItemOutcome::Lost);
            assert_eq!(
                decide(&item, sync_started, GRACE, Seen::Changes),
                incremental,
                "{name}, incremental"
            );
        }
        let mut gone = item(BatchStatus::Sent, ("unscan", None), ("unscan", None));
        gone.deleted = true;
        assert_eq!(
            decide(&gone, EARLY, GRACE, Seen::Everything),
            Some(ItemOutcome::Vanished)
        );
    }
}
