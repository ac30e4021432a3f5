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
    /// Index into `policy.rules` of the rule that matched, if any (validation keeps the rules
    /// within [`MAX_RULES`], so that a plan of a million images spends 4 bytes on it, not 16).
    pub rule: Option<u16>,
    pub priority: i64,
}

/// The most `[[policy.rules]]` a configuration may have: a rule's index fits a `u16`.
pub const MAX_RULES: usize = u16::MAX as usize;

/// The target and image type of due images: a batch holds images of one of each. A plan
/// shares one per pair among all its images of it, instead of a copy of the two in each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanGroup {
    pub target: Arc<str>,
    pub image_type: ImageType,
}

/// A due image as the plan holds it: what orders and groups it, not its names. The store
/// fills in the rest a batch at a time, so that a plan of a million images costs tens of
/// megabytes, not hundreds: 48 bytes each (checked by a test), the times packed without
/// `Option`'s 8 bytes of tag apiece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The store's row of the image.
    pub row_id: i64,
    group: Arc<PlanGroup>,
    pub due: Due,
    latest_scan_time: PackedTime,
    last_submitted_at: PackedTime,
}

impl Planned {
    /// `latest_scan_time`: milliseconds since the epoch, `None` if never scanned.
    /// `last_submitted_at`: the image's last submission when the plan was read. Recording a
    /// batch claims the image only if this is still its last submission: another process
    /// that submitted it since has made it not due, whatever this plan says.
    pub fn new(
        row_id: i64,
        group: Arc<PlanGroup>,
        due: Due,
        latest_scan_time: Option<i64>,
        last_submitted_at: Option<i64>,
    ) -> Planned {
        Planned {
            row_id,
            group,
            due,
            latest_scan_time: PackedTime::new(latest_scan_time),
            last_submitted_at: PackedTime::new(last_submitted_at),
        }
    }

    pub fn group(&self) -> &Arc<PlanGroup> {
        &self.group
    }

    pub fn target(&self) -> &Arc<str> {
        &self.group.target
    }

    pub fn image_type(&self) -> &ImageType {
        &self.group.image_type
    }

    pub fn latest_scan_time(&self) -> Option<i64> {
        self.latest_scan_time.get()
    }

    pub fn last_submitted_at(&self) -> Option<i64> {
        self.last_submitted_at.get()
    }
}

impl Serialize for Planned {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Planned", 6)?;
        s.serialize_field("row_id", &self.row_id)?;
        s.serialize_field("target", &*self.group.target)?;
        s.serialize_field("image_type", &self.group.image_type)?;
        s.serialize_field("due", &self.due)?;
        s.serialize_field("latest_scan_time", &self.latest_scan_time())?;
        s.serialize_field("last_submitted_at", &self.last_submitted_at())?;
        s.end()
    }
}

/// Milliseconds since the epoch, or none, in 8 bytes: `i64::MIN` (292 million years before
/// the epoch, never a time HSS or this process records) stands for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PackedTime(i64);

impl PackedTime {
    const NONE: i64 = i64::MIN;

    fn new(ms: Option<i64>) -> PackedTime {
        // The one value that cannot be stored moves by a millisecond rather than vanish.
        PackedTime(ms.map_or(Self::NONE, |ms| ms.max(Self::NONE + 1)))
    }

    fn get(self) -> Option<i64> {
        (self.0 != Self::NONE).then_some(self.0)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_image_stays_small_since_a_plan_can_hold_a_million() {
        assert_eq!(std::mem::size_of::<Due>(), 16);
        assert_eq!(std::mem::size_of::<Planned>(), 48);
    }

    #[test]
    fn planned_times_read_back_as_given() {
        let group = Arc::new(PlanGroup {
            target: "prod".into(),
            image_type: ImageType::Private,
        });
        let due = Due {
            reason: DueReason::Stale,
            rule: None,
            priority: 0,
        };
        for (scan, submitted) in [
            (None, None),
            (Some(0), Some(-1)),
            (Some(1_795_964_599_082), None),
            (Some(i64::MAX), Some(i64::MIN + 1)),
        ] {
            let p = Planned::new(7, Arc::clone(&group), due.clone(), scan, submitted);
            assert_eq!(p.latest_scan_time(), scan);
            assert_eq!(p.last_submitted_at(), submitted);
        }
        let p = Planned::new(7, group, due, Some(i64::MIN), None);
        assert_eq!(p.latest_scan_time(), Some(i64::MIN + 1), "moved, not lost");
    }
}
