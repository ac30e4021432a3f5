//! Turning a list of images into a scan task: the one place that decides, per image,
//! whether HSS takes it (and when it ends), refuses it, or finds it already in flight. The
//! current create-task call and the scan policy's periodic runs both come through here, and
//! count in the stats exactly as the deprecated batch-scan does.

use super::Sim;
use super::billing::Billing;
use super::dataset::{Dataset, Status, Submitted};
use super::tasks::{Ending, Family, Item, Refused, Task};

/// What the caller decided about the task before its images are looked at.
pub struct TaskSpec {
    pub name: String,
    pub task_type: &'static str,
    pub policy_id: String,
    pub is_all: bool,
    pub scan_scope: i64,
    /// Images per hour for third-party images (0 = unlimited).
    pub rate_limit: i64,
}

/// How one call's images fared, for the stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub found: u64,
    pub duplicates: u64,
    pub unscannable: u64,
    /// Multi-architecture and expired shared images: HSS cannot scan them.
    pub refused: u64,
}

pub const MULTI_ARCH: &str = "multi-architecture images cannot be scanned";
pub const EXPIRED: &str = "the shared image has expired and cannot be scanned";
pub const UNSCANNABLE: &str = "the image cannot be scanned";

/// Submits `indices` (live images) as one task at `now_ms`. Third-party images enter the
/// queue one every `3600 / rate_limit` seconds when a rate limit is set.
pub fn run(
    dataset: &mut Dataset,
    billing: &mut Billing,
    spec: TaskSpec,
    id: String,
    indices: &[usize],
    now_ms: i64,
) -> (Task, Tally) {
    let mut tally = Tally::default();
    let mut items = Vec::with_capacity(indices.len());
    let mut refused = Vec::new();
    let pace = (spec.rate_limit > 0).then(|| 3_600_000 / spec.rate_limit);
    let mut paced = 0i64;
    for &index in indices {
        tally.found += 1;
        let reason = if dataset.is_multi_arch(index) {
            Some(MULTI_ARCH)
        } else if dataset.is_expired(index) {
            Some(EXPIRED)
        } else if !dataset.is_scannable(index) {
            tally.unscannable += 1;
            Some(UNSCANNABLE)
        } else {
            None
        };
        if let Some(reason) = reason {
            if reason != UNSCANNABLE {
                tally.refused += 1;
            }
            refused.push(Refused {
                index: index as u32,
                reason,
            });
            continue;
        }
        let start = match pace {
            Some(step) if dataset.kind(index).is_third_party() => {
                let start = now_ms.saturating_add(paced.saturating_mul(step));
                paced += 1;
                start
            }
            _ => now_ms,
        };
        let outcome = dataset.submit_at(index, now_ms, start);
        let (finish_ms, status) = dataset.pending_outcome(index);
        match outcome {
            Submitted::Queued => {
                if status == Status::Success {
                    billing.expect_success(finish_ms);
                }
            }
            Submitted::Duplicate => tally.duplicates += 1,
            // Handled above; kept for completeness of the match.
            Submitted::Unscannable => continue,
        }
        let findings = dataset.findings(index);
        items.push(Item {
            index: index as u32,
            submitted_ms: dataset.submitted_ms(index),
            finish_ms,
            outcome: status,
            risky: findings.risky(),
            withdrawn: false,
        });
    }
    let task = Task {
        id,
        name: spec.name,
        family: Family::Scan,
        task_type: spec.task_type,
        policy_id: spec.policy_id,
        begin_ms: now_ms,
        scan_scope: spec.scan_scope,
        rate_limit: spec.rate_limit,
        is_all: spec.is_all,
        items,
        refused,
        registries: Vec::new(),
        sync_end_ms: 0,
        stopped_ms: None,
        ending: Ending::Normal,
    };
    (task, tally)
}

/// Counts one scan call of `images` images in the stats, the way batch-scan always has.
pub fn count(sim: &Sim, images: usize, tally: &Tally) {
    sim.stats.update(|s| {
        s.scan_task_calls += 1;
        s.images_submitted += tally.found;
        s.duplicate_submissions += tally.duplicates;
        s.unscannable_submissions += tally.unscannable;
        s.refused_submissions += tally.refused;
        *s.images_per_call.entry(images as u64).or_default() += 1;
    });
}
