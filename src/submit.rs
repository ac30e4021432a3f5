//! Submission: turn the plan into batch-scan calls, and reconcile them with what later syncs
//! show.
//!
//! Each batch holds at most `policy.batch_size` images of one target and one image type
//! (hence one enterprise project). It is committed `pending` with its items before the call,
//! so a crash at any point leaves a record; the answer then makes it `sent` or `failed`, or
//! leaves it `pending` when the answer does not tell whether HSS took it (timeout, 5xx). Such
//! a batch is never resent blindly: its images stay in flight until a sync shows they moved
//! (received) or, `submit_grace` after the submission, that nothing moved (never received,
//! due again).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::app::TargetClient;
use crate::config::PolicySettings;
use crate::domain::{DueReason, ImageType, ScanStatus, Target};
use crate::hss::error::HssError;
use crate::hss::model::{BatchScanItem, BatchScanRequest};
use crate::jobs::StopFlag;
use crate::policy::{Plan, Planned, Planner};
use crate::store::{BatchError, DueImage, ItemOutcome, OpenItem, Store, StoreError, now_ms};

const DAY_MS: i64 = 86_400_000;

/// The start of the UTC day that `now` (ms) falls in: the daily budget's period.
pub fn utc_day_start(now: i64) -> i64 {
    now - now.rem_euclid(DAY_MS)
}

/// What is left of today's budget, `None` when there is no daily budget.
pub async fn budget_left(
    store: &Store,
    policy: &PolicySettings,
    now: i64,
) -> Result<Option<u64>, StoreError> {
    match policy.daily_budget_cap() {
        None => Ok(None),
        Some(cap) => {
            let used = store.submitted_since(utc_day_start(now)).await?;
            Ok(Some(cap.saturating_sub(used)))
        }
    }
}

/// The plan for every target from what the database holds now.
#[tracing::instrument(skip_all, err)]
pub async fn plan(
    store: &Store,
    targets: &[Target],
    policy: &PolicySettings,
    now: i64,
) -> Result<Plan, StoreError> {
    let left = budget_left(store, policy, now).await?;
    let mut planner = Planner::new(policy, left);
    let with_names = !policy.rules.is_empty();
    for target in targets {
        let name: Arc<str> = Arc::from(target.name.as_str());
        store
            .visit_candidates(&target.name, with_names, &mut |c| {
                planner.add(target, &name, c, policy, now)
            })
            .await?;
    }
    Ok(planner.finish())
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// HSS accepted it.
    Sent,
    /// HSS certainly did not take it; its images are due again.
    Failed,
    /// The answer did not tell; the next syncs decide.
    Unknown,
    /// HSS said too large; it was split in two and each half went on its own.
    Split,
}

impl BatchState {
    /// The name in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Sent => "sent",
            BatchState::Failed => "failed",
            BatchState::Unknown => "unknown",
            BatchState::Split => "split",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub batch_id: i64,
    pub target: String,
    pub image_type: ImageType,
    pub items: usize,
    /// How many of its images were due for each reason.
    pub reasons: Vec<(DueReason, u64)>,
    pub state: BatchState,
    pub error: Option<String>,
}

/// What a scan did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanReport {
    pub due: usize,
    pub due_before_caps: usize,
    pub batches: Vec<BatchReport>,
    /// Why submission stopped before the end of the plan, if it did.
    pub stopped: Option<String>,
}

impl ScanReport {
    /// Images in batches HSS accepted.
    pub fn submitted(&self) -> usize {
        self.count(BatchState::Sent)
    }

    pub fn count(&self, state: BatchState) -> usize {
        self.batches
            .iter()
            .filter(|b| b.state == state)
            .map(|b| b.items)
            .sum()
    }

    /// Every due image went out in an accepted batch.
    pub fn succeeded(&self) -> bool {
        self.stopped.is_none()
            && self
                .batches
                .iter()
                .all(|b| matches!(b.state, BatchState::Sent | BatchState::Split))
    }
}

/// Submits `plan` with one client per target, in plan order.
#[tracing::instrument(skip_all, fields(due = plan.due.len()))]
pub async fn submit(
    store: &Store,
    clients: &[TargetClient],
    plan: Plan,
    batch_size: usize,
    stop: &StopFlag,
) -> Result<ScanReport, StoreError> {
    let mut report = ScanReport {
        due: plan.due.len(),
        due_before_caps: plan.due_before_caps,
        ..ScanReport::default()
    };
    for (target, image_type) in groups(&plan.due) {
        let Some(tc) = clients.iter().find(|tc| *tc.target.name == *target) else {
            report.stopped = Some(format!("target {target} is no longer configured"));
            break;
        };
        // One pass over the plan per group (a few per target) instead of a copy of the plan
        // regrouped: the plan of a large scan is the biggest thing this process holds.
        // (A plain loop rather than a `filter` adapter held across the awaits below: a
        // stored closure over references keeps the future from being provably `Send`.)
        let mut rest = plan.due.iter();
        loop {
            if stop.is_stopped() {
                report.stopped = Some("hss-scand is shutting down".to_owned());
                return Ok(report);
            }
            let mut chunk: Vec<Planned> =
                Vec::with_capacity(batch_size.clamp(1, crate::domain::limits::BATCH_ITEMS));
            for d in rest.by_ref() {
                if d.target == target && d.image_type == image_type {
                    chunk.push(d.clone());
                    if chunk.len() == batch_size.max(1) {
                        break;
                    }
                }
            }
            if chunk.is_empty() {
                break;
            }
            // Names are read a batch at a time; images deleted since planning drop out.
            let items = store.due_images(&chunk).await?;
            drop(chunk);
            if items.is_empty() {
                continue;
            }
            let flow = send_batch(store, tc, &image_type, &items, None, &mut report).await?;
            if let Flow::Stop(why) = flow {
                report.stopped = Some(why);
                return Ok(report);
            }
        }
    }
    Ok(report)
}

/// The target and image type pairs of the ordered due list, in order of first appearance:
/// batches hold one of each, and go out in the plan's order within and between groups.
pub fn groups(due: &[Planned]) -> Vec<(Arc<str>, ImageType)> {
    let mut groups: Vec<(Arc<str>, ImageType)> = Vec::new();
    for d in due {
        if !groups
            .iter()
            .any(|(t, i)| *t == d.target && *i == d.image_type)
        {
            groups.push((Arc::clone(&d.target), d.image_type.clone()));
        }
    }
    groups
}

/// How many of `items` were due for each reason.
fn reasons(items: &[DueImage]) -> Vec<(DueReason, u64)> {
    DueReason::ALL
        .into_iter()
        .map(|reason| {
            let n = items
                .iter()
                .filter(|d| d.planned.due.reason == reason)
                .count();
            (reason, n as u64)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Whether to go on with the next batch.
enum Flow {
    Continue,
    /// The failure is not this batch's fault (throttled, no connection, bad credentials):
    /// the next batches would fail the same way and spend the rate limit for nothing.
    Stop(String),
}

fn batch_error(err: &HssError) -> BatchError {
    let api = err.api();
    BatchError {
        http_status: api.map(|a| a.status),
        error_code: api.map(|a| a.error_code.clone()),
        request_id: api.and_then(|a| a.request_id.clone()),
        message: err.to_string(),
    }
}

/// Failures that say nothing about the batch itself.
fn stops_the_run(err: &HssError) -> bool {
    match err {
        HssError::Api(api) => api.is_throttling() || matches!(api.status, 401 | 403),
        HssError::Connect { .. } | HssError::Credentials(_) => true,
        _ => false,
    }
}

fn send_batch<'a>(
    store: &'a Store,
    tc: &'a TargetClient,
    image_type: &'a ImageType,
    items: &'a [DueImage],
    parent: Option<i64>,
    report: &'a mut ScanReport,
) -> futures::future::BoxFuture<'a, Result<Flow, StoreError>> {
    // Boxed because HSS.0006 recurses into each half.
    Box::pin(async move {
        let target = &tc.target;
        let batch_id = store
            .record_pending_batch(
                &target.name,
                image_type,
                &target.enterprise_project_id,
                parent,
                items,
                now_ms(),
            )
            .await?;
        let body = BatchScanRequest {
            image_info_list: items
                .iter()
                .map(|d| BatchScanItem {
                    namespace: d.namespace.clone(),
                    image_name: d.image_name.clone(),
                    image_version: d.image_version.clone(),
                    instance_id: non_empty(&d.instance_id),
                    instance_url: non_empty(&d.instance_url),
                })
                .collect(),
            operate_all: false,
            image_type: image_type.clone(),
        };
        let result = tc.client.batch_scan(&body).await;
        drop(body);
        let mut entry = BatchReport {
            batch_id,
            target: target.name.clone(),
            image_type: image_type.clone(),
            items: items.len(),
            reasons: reasons(items),
            state: BatchState::Sent,
            error: None,
        };
        let flow = match result {
            Ok(()) => {
                store.mark_batch_sent(batch_id, now_ms()).await?;
                Flow::Continue
            }
            Err(err) if err.is_request_too_large() && items.len() > 1 => {
                store
                    .mark_batch_failed(batch_id, &batch_error(&err), now_ms())
                    .await?;
                tracing::warn!(
                    batch = batch_id,
                    items = items.len(),
                    "HSS says the batch is too large; splitting it in two"
                );
                entry.state = BatchState::Split;
                entry.error = Some(err.to_string());
                report.batches.push(entry);
                let (first, second) = items.split_at(items.len() / 2);
                for half in [first, second] {
                    if let Flow::Stop(why) =
                        send_batch(store, tc, image_type, half, Some(batch_id), report).await?
                    {
                        return Ok(Flow::Stop(why));
                    }
                }
                return Ok(Flow::Continue);
            }
            Err(err) if err.outcome_unknown() => {
                store
                    .mark_batch_unknown(batch_id, &batch_error(&err), now_ms())
                    .await?;
                tracing::warn!(batch = batch_id, error = %err, "no clear answer to a batch; its images stay in flight until a sync shows whether HSS took it");
                entry.state = BatchState::Unknown;
                entry.error = Some(err.to_string());
                Flow::Continue
            }
            Err(err) => {
                store
                    .mark_batch_failed(batch_id, &batch_error(&err), now_ms())
                    .await?;
                tracing::warn!(batch = batch_id, error = %err, "batch rejected; its images are due again");
                entry.state = BatchState::Failed;
                entry.error = Some(err.to_string());
                if stops_the_run(&err) {
                    Flow::Stop(format!("stopped submitting after batch {batch_id}: {err}"))
                } else {
                    Flow::Continue
                }
            }
        };
        report.batches.push(entry);
        Ok(flow)
    })
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The outcome of an open item, judged by a sync of its target and type that started at
/// `sync_started_at` and listed every page; `None` while it is still open.
pub fn decide(
    item: &OpenItem,
    sync_started_at: i64,
    submit_grace: Duration,
) -> Option<ItemOutcome> {
    if item.deleted {
        return Some(ItemOutcome::Vanished);
    }
    let grace = i64::try_from(submit_grace.as_millis()).unwrap_or(i64::MAX);
    // A sync that started too soon may show the image as it was before HSS took the batch.
    if sync_started_at < item.submitted_at.saturating_add(grace) {
        return None;
    }
    let unchanged =
        item.scan_status == item.status_before && item.latest_scan_time == item.scan_time_before;
    if unchanged {
        // An unanswered batch whose images did not move was never received. An accepted one
        // that did not move is left to `scanning_timeout`, rather than paid for again now.
        return (item.batch_status == "pending").then_some(ItemOutcome::Lost);
    }
    match ScanStatus::from(item.scan_status.as_str()) {
        ScanStatus::Success => Some(ItemOutcome::Success),
        status if status.is_finished() => Some(ItemOutcome::Failed),
        _ => None,
    }
}

/// What reconciliation did after one sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciled {
    pub success: usize,
    pub failed: usize,
    pub lost: usize,
    pub vanished: usize,
    pub still_open: usize,
    /// Submission to finished status, for each scan seen to finish.
    pub completion_times: Vec<Duration>,
}

/// Moves the submissions of one target and type on, from a complete sync that started at
/// `sync_started_at`.
#[tracing::instrument(skip_all, err, fields(target, image_type = %image_type))]
pub async fn reconcile(
    store: &Store,
    target: &str,
    image_type: &ImageType,
    sync_started_at: i64,
    submit_grace: Duration,
) -> Result<Reconciled, StoreError> {
    let now = now_ms();
    let mut done = Reconciled::default();
    let mut closing = Vec::new();
    for item in store.open_items(target, image_type).await? {
        match decide(&item, sync_started_at, submit_grace) {
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
    store.close_items(&closing, now).await?;
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

    fn item(batch: &str, before: (&str, Option<i64>), now: (&str, Option<i64>)) -> OpenItem {
        OpenItem {
            item_id: 1,
            image_id: 1,
            batch_id: 1,
            batch_status: batch.into(),
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
                item("pending", ("unscan", None), ("unscan", None)),
                EARLY,
                None,
            ),
            (
                "unanswered and unmoved: lost",
                item("pending", ("unscan", None), ("unscan", None)),
                LATE,
                Some(ItemOutcome::Lost),
            ),
            (
                "accepted and unmoved: wait",
                item("sent", ("unscan", None), ("unscan", None)),
                LATE,
                None,
            ),
            (
                "unanswered but queued: received",
                item("pending", ("unscan", None), ("waiting_for_scan", None)),
                LATE,
                None,
            ),
            (
                "scanned to success",
                item("sent", ("unscan", None), ("success", Some(5))),
                LATE,
                Some(ItemOutcome::Success),
            ),
            (
                "rescanned: a new time",
                item("pending", ("success", Some(1)), ("success", Some(9))),
                LATE,
                Some(ItemOutcome::Success),
            ),
            (
                "scan failed",
                item("sent", ("success", Some(1)), ("failed", Some(1))),
                LATE,
                Some(ItemOutcome::Failed),
            ),
            (
                "still scanning",
                item("sent", ("unscan", None), ("scanning", None)),
                LATE,
                None,
            ),
            (
                "failed again, same time, accepted: wait for the timeout",
                item("sent", ("failed", Some(3)), ("failed", Some(3))),
                LATE,
                None,
            ),
        ];
        for (name, item, sync_started, want) in cases {
            assert_eq!(decide(&item, sync_started, GRACE), want, "{name}");
        }
        let mut gone = item("sent", ("unscan", None), ("unscan", None));
        gone.deleted = true;
        assert_eq!(decide(&gone, EARLY, GRACE), Some(ItemOutcome::Vanished));
    }

    #[test]
    fn the_budget_day_is_the_utc_day() {
        let day = 20_000 * DAY_MS;
        assert_eq!(utc_day_start(day + 5), day);
        assert_eq!(utc_day_start(day), day);
        assert_eq!(utc_day_start(day - 1), day - DAY_MS);
    }
}
