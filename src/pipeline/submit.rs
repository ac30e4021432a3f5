//! Submission: cut the plan into batches and hand each to its target's [`ScanSubmitter`].
//!
//! Each batch holds at most `policy.batch_size` images (and never more than the API takes in
//! one call) of one target and one image type, hence one enterprise project. It is committed
//! `pending` with its items before the call, so a crash at any point leaves a record; the
//! answer then makes it `sent` or `failed`, or leaves it `pending` when the answer does not
//! tell whether HSS took it. Such a batch is never resent blindly: its images stay in flight
//! until [`super::reconcile`] sees them move (received) or, `submit_grace` after the
//! submission, sees that nothing moved (never received, due again).

use std::sync::Arc;

use super::TargetApi;
use super::report::{BatchReport, BatchState, ScanReport};
use crate::domain::{DueReason, ImageIdentity, ImageType, PlanGroup, Planned, Shutdown};
use crate::hss::{SendGate, SubmitError};
use crate::policy::Plan;
use crate::store::{Claim, DueImage, Fence, NewBatch, Store, StoreError};

/// Submits `plan` through each target's submitter, in plan order, as the holder of the
/// lease `fence` names: once the lease is found lost, nothing more is recorded or sent.
#[tracing::instrument(skip_all, fields(due = plan.due.len(), term = fence.term))]
pub async fn submit(
    store: &Store,
    targets: &[TargetApi],
    plan: Plan,
    batch_size: usize,
    fence: &Fence,
    shutdown: &Shutdown,
) -> Result<ScanReport, StoreError> {
    // Which images go out was decided by the plan (its caps cut the oldest scans last).
    // Within one priority and reason they go out in row order: each batch then claims
    // neighbouring rows, and writes a few pages of the database rather than one per image.
    let mut plan = plan;
    // Unstable: row ids are unique, and a stable sort would copy half of a plan that can be
    // the largest thing this process holds.
    plan.due
        .sort_unstable_by_key(|d| (std::cmp::Reverse(d.due.priority), d.due.reason, d.row_id));
    let mut report = ScanReport {
        due: plan.due.len(),
        due_before_caps: plan.due_before_caps,
        ..ScanReport::default()
    };
    // Targets whose submissions cannot go on (their preflight failed, or a batch said so).
    let mut stopped_targets: Vec<Arc<str>> = Vec::new();
    let mut checked_targets: Vec<Arc<str>> = Vec::new();
    for group in groups(&plan.due) {
        let (target, image_type) = (&group.target, &group.image_type);
        let Some(api) = targets.iter().find(|t| *t.target.name == **target) else {
            report.stopped = Some(format!("target {target} is no longer configured"));
            break;
        };
        if stopped_targets.contains(target) {
            continue;
        }
        if !checked_targets.contains(target) {
            checked_targets.push(Arc::clone(target));
            if let Err(err) = api.scans.preflight().await {
                tracing::warn!(hss_target = %target, error = %err, "no scans can be submitted for this target now");
                report.stopped = Some(format!("target {target}: {err}"));
                stopped_targets.push(Arc::clone(target));
                continue;
            }
        }
        let per_call = batch_size.clamp(1, api.scans.max_batch().max(1));
        // One pass over the plan per group (a few per target) instead of a copy of the plan
        // regrouped: the plan of a large scan is the biggest thing this process holds.
        // (A plain loop rather than a `filter` adapter held across the awaits below: a
        // stored closure over references keeps the future from being provably `Send`.)
        let mut rest = plan.due.iter();
        loop {
            if shutdown.is_requested() {
                report.stopped = Some("hss-scand is shutting down".to_owned());
                return Ok(report);
            }
            let mut chunk: Vec<Planned> = Vec::with_capacity(per_call);
            for d in rest.by_ref() {
                if *d.group() == group {
                    chunk.push(d.clone());
                    if chunk.len() == per_call {
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
            let flow = send_batch(store, fence, api, image_type, &items, None, &mut report).await?;
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
pub fn groups(due: &[Planned]) -> Vec<Arc<PlanGroup>> {
    let mut groups: Vec<Arc<PlanGroup>> = Vec::new();
    for d in due {
        if !groups.contains(d.group()) {
            groups.push(Arc::clone(d.group()));
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

/// The gate of every scan call: open only while this process holds the leader lease with
/// the term the batch was recorded under. The rate limit's wait (and a pause of the whole
/// process) come between recording a batch and sending it; a process that lost the lease
/// meanwhile must not send, since the new leader may already have found the batch never
/// received and submitted its images again.
struct LeaseGate<'a> {
    store: &'a Store,
    fence: &'a Fence,
}

#[async_trait::async_trait]
impl SendGate for LeaseGate<'_> {
    async fn may_send(&self) -> Result<(), String> {
        let lease = self
            .store
            .lease()
            .await
            .map_err(|err| format!("cannot check the leader lease: {err}"))?;
        let now = self.store.clock().now_ms();
        match lease {
            Some(l) if l.is_held_by(self.fence, now) => Ok(()),
            Some(l) if l.holder != self.fence.holder => Err(format!(
                "this process lost the leader lease (term {}) to {} (term {})",
                self.fence.term, l.holder, l.term
            )),
            _ => Err(format!(
                "the leader lease of this process (term {}) expired",
                self.fence.term
            )),
        }
    }
}

/// Whether to go on with the next batch.
enum Flow {
    Continue,
    /// The failure is not this batch's fault (throttled, no connection, bad credentials):
    /// the next batches would fail the same way and spend the rate limit for nothing.
    Stop(String),
}

fn send_batch<'a>(
    store: &'a Store,
    fence: &'a Fence,
    api: &'a TargetApi,
    image_type: &'a ImageType,
    items: &'a [DueImage],
    parent: Option<i64>,
    report: &'a mut ScanReport,
) -> futures::future::BoxFuture<'a, Result<Flow, StoreError>> {
    // Boxed because a batch that is too large recurses into each half.
    Box::pin(async move {
        let target = &api.target;
        let batch = NewBatch {
            target: &target.name,
            image_type,
            enterprise_project_id: &target.enterprise_project_id,
            parent_id: parent,
            api: api.scans.api_in_use().generation(),
        };
        let claimed = match store.record_pending_batch(&batch, items, fence).await? {
            Claim::Claimed(claimed) => claimed,
            Claim::NothingLeft => {
                tracing::info!(
                    images = items.len(),
                    "another process submitted these images meanwhile; nothing left to send"
                );
                return Ok(Flow::Continue);
            }
            Claim::Fenced(lease) => {
                let why = match lease {
                    Some(l) if l.holder != fence.holder => format!(
                        "this process lost the leader lease (term {}) to {} (term {}); it \
                         submits nothing more",
                        fence.term, l.holder, l.term
                    ),
                    _ => format!(
                        "the leader lease of this process (term {}) expired before it could be \
                         renewed; it submits nothing more",
                        fence.term
                    ),
                };
                tracing::warn!("{why}");
                return Ok(Flow::Stop(why));
            }
        };
        let kept: Vec<DueImage>;
        let items = if claimed.left_out.is_empty() {
            items
        } else {
            tracing::info!(
                left_out = claimed.left_out.len(),
                "images another process submitted meanwhile are left out of the batch"
            );
            kept = claimed.kept(items);
            kept.as_slice()
        };
        let batch_id = claimed.batch_id;
        // The batch is recorded as submitted now; an image with no submission before this one
        // (a refused or lost one does not count) is submitted for the first time.
        let submitted_at = store.clock().now_ms();
        let first_submitted_after: Vec<f32> = items
            .iter()
            .filter(|d| d.last_submitted_at.is_none())
            .map(|d| submitted_at.saturating_sub(d.appeared_at).max(0) as f32 / 1000.0)
            .collect();
        let identities: Vec<&ImageIdentity> = items.iter().map(|d| &d.identity).collect();
        let gate = LeaseGate { store, fence };
        let result = api.scans.submit(image_type, &identities, &gate).await;
        drop(identities);
        let mut entry = BatchReport {
            batch_id,
            target: target.name.clone(),
            image_type: image_type.clone(),
            items: items.len(),
            reasons: reasons(items),
            state: BatchState::Sent,
            error: None,
            task_id: None,
            first_submitted_after,
        };
        let flow = match result {
            Ok(receipt) => {
                store
                    .mark_batch_sent(batch_id, receipt.task_id.as_deref())
                    .await?;
                entry.task_id = receipt.task_id;
                Flow::Continue
            }
            Err(SubmitError::TooLarge(failure)) if items.len() > 1 => {
                store.mark_batch_failed(batch_id, &failure).await?;
                tracing::warn!(
                    batch = batch_id,
                    items = items.len(),
                    "HSS says the batch is too large; splitting it in two"
                );
                entry.state = BatchState::Split;
                entry.error = Some(failure.message);
                report.batches.push(entry);
                let (first, second) = items.split_at(items.len() / 2);
                for half in [first, second] {
                    if let Flow::Stop(why) =
                        send_batch(store, fence, api, image_type, half, Some(batch_id), report)
                            .await?
                    {
                        return Ok(Flow::Stop(why));
                    }
                }
                return Ok(Flow::Continue);
            }
            Err(SubmitError::OutcomeUnknown(failure)) => {
                store.mark_batch_unknown(batch_id, &failure).await?;
                tracing::warn!(batch = batch_id, error = %failure.message, "no clear answer to a batch; its images stay in flight until a sync shows whether HSS took it");
                entry.state = BatchState::Unknown;
                entry.error = Some(failure.message);
                Flow::Continue
            }
            Err(err) => {
                let stop = matches!(err, SubmitError::StopRun(_));
                let failure = err.failure();
                store.mark_batch_failed(batch_id, failure).await?;
                tracing::warn!(batch = batch_id, error = %failure.message, "batch rejected; its images are due again");
                entry.state = BatchState::Failed;
                entry.error = Some(failure.message.clone());
                if stop {
                    Flow::Stop(format!(
                        "stopped submitting after batch {batch_id}: {}",
                        failure.message
                    ))
                } else {
                    Flow::Continue
                }
            }
        };
        report.batches.push(entry);
        Ok(flow)
    })
}
