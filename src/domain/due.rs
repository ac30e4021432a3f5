//! The plan's vocabulary: what the policy reads of an image, why an image is due, and what a
//! plan keeps of a due image. The store produces [`Candidate`]s and reads [`Planned`] ones
//! back; the policy turns the first into the second.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::image::{ImageType, ScanStatus, Unsubmittable};

/// Why an image is due for a (re)scan, in the order the policy checks them: an image gets the
/// first that applies, and at equal priority earlier reasons are submitted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueReason {
    /// HSS has never scanned it.
    NeverScanned,
    /// Its tag now points at other content than the last scan saw: its digest differs from
    /// the one we last submitted, or HSS dates its last push after its last scan.
    Changed,
    /// Its last scan failed, the retry pause has passed and retries are left.
    FailedRetry,
    /// Its last successful scan is older than `rescan_after`.
    Stale,
    /// We submitted it, HSS still shows it queued or scanning, and `scanning_timeout` passed.
    Stuck,
}

impl DueReason {
    pub const ALL: [DueReason; 5] = [
        DueReason::NeverScanned,
        DueReason::Changed,
        DueReason::FailedRetry,
        DueReason::Stale,
        DueReason::Stuck,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DueReason::NeverScanned => "never_scanned",
            DueReason::Changed => "changed",
            DueReason::FailedRetry => "failed_retry",
            DueReason::Stale => "stale",
            DueReason::Stuck => "stuck",
        }
    }

    pub fn parse(text: &str) -> Option<DueReason> {
        DueReason::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for DueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the policy needs to know of one present image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The store's row: the tie-breaker of the order, and how a submission names the image.
    pub row_id: i64,
    pub image_type: ImageType,
    /// Namespace, name and tag are read only by `[[policy.rules]]` globs; without rules the
    /// store leaves them empty rather than copy a million names for nothing.
    pub namespace: String,
    pub image_name: String,
    pub image_version: String,
    /// Why the API that listed it cannot take it in a scan call, if it cannot.
    pub unsubmittable: Option<Unsubmittable>,
    pub scan_status: ScanStatus,
    /// Milliseconds since the epoch.
    pub latest_scan_time: Option<i64>,
    /// HSS's `latest_update_time` (ms), when it is later than `latest_scan_time`: the tag was
    /// pushed again after its last scan. `None` otherwise, or when either time is unknown;
    /// the store leaves the (far more common) other cases out, which the policy never reads.
    pub updated_after_scan: Option<i64>,
    /// The image's digest differs from the digest of our last submission of it. `false`
    /// when we never submitted it or either digest is unknown.
    pub digest_changed: bool,
    pub scannable: Option<bool>,
    pub latest_version: Option<bool>,
    /// When we last submitted it (ms), if ever.
    pub last_submitted_at: Option<i64>,
    /// Our last submission has not been seen to finish, fail or get lost yet.
    pub in_flight: bool,
    /// Our consecutive submissions of it that ended in a failed scan.
    pub failed_submissions: u32,
}

/// Why and how urgently an image is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Due {
    pub reason: DueReason,
    /// Index into `policy.rules` of the rule that matched, if any.
    pub rule: Option<usize>,
    pub priority: i64,
}

/// A due image as the plan holds it: what orders and groups it, not its names. The store
/// fills in the rest a batch at a time, so that a plan of a million images costs tens of
/// megabytes, not hundreds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// The store's row of the image.
    pub row_id: i64,
    pub target: Arc<str>,
    pub image_type: ImageType,
    pub due: Due,
    /// Milliseconds since the epoch; `None`: never scanned.
    pub latest_scan_time: Option<i64>,
    /// The image's last submission when the plan was read. Recording a batch claims the image
    /// only if this is still its last submission: another process that submitted it since
    /// has made it not due, whatever this plan says.
    pub last_submitted_at: Option<i64>,
}

/// How a scan call failed, as the adapter saw it and the store records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchFailure {
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    /// The `X-Request-Id` Huawei support asks for.
    pub request_id: Option<String>,
    pub message: String,
}
