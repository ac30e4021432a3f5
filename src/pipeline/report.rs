//! What each stage of the pipeline reports, and the one-line summaries people read: the
//! daemon logs and records the `summary` of a run, the CLI prints its per-target lines.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::account::Survey;
use super::tasks::TasksFollowed;
use crate::domain::{DueReason, ImageType};
use crate::store::{ListingKind, SyncListing, SyncOutcome, SyncRunCounts};

/// How one target and image type was synced.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub target: String,
    pub image_type: ImageType,
    pub run_id: i64,
    /// When the listing started (ms): reconciliation judges submissions against it.
    pub started_at: i64,
    pub outcome: SyncOutcome,
    pub counts: SyncRunCounts,
    /// What went wrong, if anything (also when the listing still completed, e.g. a failed
    /// `trigger_swr_sync`).
    pub error: Option<String>,
    /// Whether it listed every image or what changed, why, and (a full listing) how many
    /// changes the incremental listings before it missed.
    pub listing: SyncListing,
    /// How our submissions moved on; only a complete sync can tell, so the pipeline fills
    /// this in after one.
    pub reconciled: Option<Reconciled>,
}

impl SyncReport {
    /// Everything asked for was done.
    pub fn succeeded(&self) -> bool {
        self.outcome == SyncOutcome::Complete && self.error.is_none()
    }
}

/// `sync <target> <type> <outcome> (<listing>: <why>): N pages, …`: one line of
/// `hss-scand sync`.
impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        write!(
            f,
            "sync {} {} {} ({}: {}): {} pages, {} listed of {}, {} new, {} changed, {} restored, {} deleted",
            self.target,
            self.image_type,
            self.outcome.as_str(),
            self.listing.kind.as_str(),
            self.listing.reason,
            c.pages,
            c.seen,
            c.total_num
                .map_or_else(|| "?".to_owned(), |t| t.to_string()),
            c.new,
            c.changed,
            c.restored,
            c.deleted,
        )?;
        if c.held > 0 {
            write!(f, ", {} deletions held back", c.held)?;
        }
        if c.unreadable_fields > 0 {
            write!(f, ", {} unreadable fields", c.unreadable_fields)?;
        }
        if self.listing.missed > 0 {
            write!(
                f,
                ", {} changes the incremental listings missed",
                self.listing.missed
            )?;
        }
        if let Some(rec) = &self.reconciled
            && rec.success + rec.failed + rec.lost + rec.vanished > 0
        {
            write!(
                f,
                "; submissions: {} scanned, {} failed, {} never received, {} vanished",
                rec.success, rec.failed, rec.lost, rec.vanished
            )?;
        }
        if let Some(e) = &self.error {
            write!(f, " — ERROR: {e}")?;
        }
        Ok(())
    }
}

/// What a sync of every target did.
#[derive(Debug, Clone, Default)]
pub struct SyncAllReport {
    /// One per target and image type.
    pub reports: Vec<SyncReport>,
    /// How long each target took, all its types together.
    pub took: Vec<(String, Duration)>,
    /// Targets left out because a stop was asked for.
    pub stopped_before: Vec<String>,
    /// What each target's project said about itself.
    pub surveys: Vec<Survey>,
    /// What following each target's scan tasks found.
    pub tasks: Vec<(String, TasksFollowed)>,
}

impl SyncAllReport {
    /// Every target was listed completely, and none was left out.
    pub fn succeeded(&self) -> bool {
        self.stopped_before.is_empty()
            && self
                .reports
                .iter()
                .all(|r| r.outcome == SyncOutcome::Complete)
    }

    /// The daemon's one-line summary of a sync run.
    pub fn summary(&self) -> String {
        let count = |outcome| self.reports.iter().filter(|r| r.outcome == outcome).count();
        let sum = |f: fn(&SyncRunCounts) -> i64| -> i64 {
            self.reports.iter().map(|r| f(&r.counts)).sum()
        };
        let incremental = self
            .reports
            .iter()
            .filter(|r| r.listing.kind == ListingKind::Incremental)
            .count();
        let mut summary = format!(
            "sync finished: {} listing(s) ({incremental} incremental), {} complete, {} partial, {} failed; {} images seen, {} new, {} changed, {} deleted",
            self.reports.len(),
            count(SyncOutcome::Complete),
            count(SyncOutcome::Partial),
            count(SyncOutcome::Failed),
            sum(|c| c.seen),
            sum(|c| c.new),
            sum(|c| c.changed),
            sum(|c| c.deleted),
        );
        let missed: i64 = self.reports.iter().map(|r| r.listing.missed).sum();
        if missed > 0 {
            summary.push_str(&format!(
                "; {missed} changes the incremental listings missed"
            ));
        }
        if !self.stopped_before.is_empty() {
            summary.push_str(&format!(
                "; stopped before {} target(s) for shutdown",
                self.stopped_before.len()
            ));
        }
        summary
    }
}

/// What reconciliation did after one complete sync of a target and type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciled {
    pub success: usize,
    pub failed: usize,
    /// Never received by HSS: the batch's answer never came and nothing moved (printed as
    /// "never received").
    pub lost: usize,
    pub vanished: usize,
    pub still_open: usize,
    /// Submission to finished status, for each scan seen to finish.
    pub completion_times: Vec<Duration>,
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// HSS accepted it.
    Sent,
    /// HSS certainly did not take it; its images are due again.
    Failed,
    /// The answer did not tell whether HSS took it. Its row stays `pending` (the state of a
    /// batch recorded before its call) because for the audit trail nothing has changed: it
    /// is still waiting for the next syncs to decide.
    Unknown,
    /// HSS said too large; it was split in two and each half went on its own. Its row is
    /// `failed` with the error code that said so.
    Split,
}

impl BatchState {
    pub const ALL: [BatchState; 4] = [
        BatchState::Sent,
        BatchState::Failed,
        BatchState::Unknown,
        BatchState::Split,
    ];

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
    /// The scan task HSS made of it (current API).
    pub task_id: Option<String>,
    /// For each image this batch submitted for the first time (no earlier submission of ours
    /// counted), how many seconds after it appeared: its `latest_update_time`, or when a sync
    /// first saw it. As `f32`: a histogram needs no finer resolution (a millisecond up to 4
    /// hours, a second up to 194 days), and a scan of a million new images keeps a million.
    pub first_submitted_after: Vec<f32>,
}

/// `batch <id> <target> <type>: N images <state>`: one line of `hss-scand scan`.
impl fmt::Display for BatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batch {} {} {}: {} images {}",
            self.batch_id,
            self.target,
            self.image_type,
            self.items,
            match self.state {
                BatchState::Sent => "accepted",
                BatchState::Failed => "REJECTED (due again)",
                BatchState::Unknown => "UNKNOWN (in flight until a sync tells)",
                BatchState::Split => "too large, split",
            }
        )?;
        if let Some(task) = &self.task_id {
            write!(f, " (scan task {task})")?;
        }
        if let Some(e) = &self.error {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
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
        self.images_in(BatchState::Sent)
    }

    /// Images in the batches that ended in `state`.
    pub fn images_in(&self, state: BatchState) -> usize {
        self.batches
            .iter()
            .filter(|b| b.state == state)
            .map(|b| b.items)
            .sum()
    }

    /// Batches HSS accepted.
    pub fn accepted_batches(&self) -> usize {
        self.batches
            .iter()
            .filter(|b| b.state == BatchState::Sent)
            .count()
    }

    /// Every due image went out in an accepted batch.
    pub fn succeeded(&self) -> bool {
        self.stopped.is_none()
            && self
                .batches
                .iter()
                .all(|b| matches!(b.state, BatchState::Sent | BatchState::Split))
    }

    /// The daemon's one-line summary of a scan run (counts of images).
    pub fn summary(&self) -> String {
        let mut summary = format!(
            "scan finished: {} due ({} before caps), {} submitted in {} batch(es), {} failed, {} unknown",
            self.due,
            self.due_before_caps,
            self.submitted(),
            self.accepted_batches(),
            self.images_in(BatchState::Failed),
            self.images_in(BatchState::Unknown),
        );
        if let Some(why) = &self.stopped {
            summary.push_str(&format!("; stopped: {why}"));
        }
        summary
    }

    /// The last line of `hss-scand scan`.
    pub fn total_line(&self) -> String {
        format!(
            "scan: {} due ({} before caps), {} submitted in {} accepted batches",
            self.due,
            self.due_before_caps,
            self.submitted(),
            self.accepted_batches(),
        )
    }
}
