//! `images.packed_policy_fields`: the policy's fields of an image (type, status, four flags
//! and the adapter's verdict) packed into one integer as mixed-radix digits, `type +
//! 8·status + 64·scannable + 192·latest_version + 1152·unsubmittable` (the 576 digit, once
//! `in_flight`, is 0 since our bookkeeping moved to `submission_state`). Each backend's
//! schema computes the number (SQLite's migrations 0006 and 0009, PostgreSQL's 0001); this
//! is the one decoder, and [`ImageState`] the one merge of our bookkeeping into a
//! [`Candidate`]. One small number per image is what lets a plan over a million images read
//! a narrow covering index instead of the table.

use crate::domain::{Candidate, ImageType, ScanStatus, Severity, Unsubmittable};
use crate::store::{ImageCount, RiskCounts};

#[derive(serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PackedPolicyFields(pub(super) u32);

/// Image types by their digit; 7 is any other. The digits 3 and 4 are the third-party
/// registries' types (`harbor`, `jfrog`), which only HSS's current list API returns.
pub(super) const TYPE_DIGITS: [&str; 5] = [
    "private_image",
    "shared_image",
    "instance_image",
    "harbor",
    "jfrog",
];

/// Scan statuses by their digit; 7 is any other.
pub(super) const STATUS_DIGITS: [ScanStatus; 7] = [
    ScanStatus::Unscan,
    ScanStatus::Scanning,
    ScanStatus::WaitingForScan,
    ScanStatus::Success,
    ScanStatus::Failed,
    ScanStatus::DownloadFailed,
    ScanStatus::ImageOversized,
];

/// The image type and scan status that the low two digits of packed policy fields
/// (`packed_policy_fields % 64`) stand for; `None` for digit 7 (any other, not named here).
pub(super) fn packed_type_and_status(digits: i64) -> Option<(String, String)> {
    let image_type = TYPE_DIGITS.get(usize::try_from(digits % 8).ok()?)?;
    let status = STATUS_DIGITS.get(usize::try_from(digits / 8 % 8).ok()?)?;
    Some(((*image_type).to_owned(), status.as_str().to_owned()))
}

/// Our bookkeeping on one image (`submission_state`); the default for one never submitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ImageState {
    pub(super) last_submitted_at: Option<i64>,
    pub(super) failed_submissions: i64,
    pub(super) in_flight: bool,
    pub(super) submitted_digest_hash: Option<i64>,
}

/// What the inventory's covering index says of one image besides its packed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexedImage {
    pub(super) row_id: i64,
    pub(super) latest_scan_time: Option<i64>,
    /// The latest push time, when it is later than the latest scan.
    pub(super) updated_after_scan: Option<i64>,
    pub(super) digest_hash: Option<i64>,
}

impl PackedPolicyFields {
    /// The candidate these fields, the index's numbers and our state describe, without names.
    pub(super) fn candidate(self, image: IndexedImage, state: ImageState) -> Candidate {
        Candidate {
            row_id: image.row_id,
            image_type: self.image_type(),
            namespace: String::new(),
            image_name: String::new(),
            image_version: String::new(),
            unsubmittable: self.unsubmittable(),
            scan_status: self.scan_status(),
            latest_scan_time: image.latest_scan_time,
            updated_after_scan: image.updated_after_scan,
            // Unknown on either side is not a change: a digest HSS did not list, or an image
            // submitted before digests were kept.
            digest_changed: matches!(
                (image.digest_hash, state.submitted_digest_hash),
                (Some(now), Some(submitted)) if now != submitted
            ),
            scannable: self.scannable(),
            latest_version: self.latest_version(),
            last_submitted_at: state.last_submitted_at,
            in_flight: state.in_flight,
            failed_submissions: u32::try_from(state.failed_submissions).unwrap_or(u32::MAX),
        }
    }

    fn image_type(self) -> ImageType {
        // The policy only needs to know an unknown type is none of ours; its name is not kept.
        TYPE_DIGITS
            .get((self.0 % 8) as usize)
            .map_or_else(|| ImageType::Other(String::new()), |t| ImageType::from(*t))
    }
    fn scan_status(self) -> ScanStatus {
        STATUS_DIGITS
            .get((self.0 / 8 % 8) as usize)
            .cloned()
            .unwrap_or_else(|| ScanStatus::Other(String::new()))
    }
    fn tristate(digit: u32) -> Option<bool> {
        match digit {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn scannable(self) -> Option<bool> {
        Self::tristate(self.0 / 64 % 3)
    }
    fn latest_version(self) -> Option<bool> {
        Self::tristate(self.0 / 192 % 3)
    }
    fn unsubmittable(self) -> Option<Unsubmittable> {
        u8::try_from(self.0 / 1152)
            .map_or(Some(Unsubmittable::FieldTooLong), Unsubmittable::from_code)
    }
}

/// `images.packed_risk`, as SQLite's migration 0011 and PostgreSQL's 0001 define it: the
/// severity digit (0 none or unknown, 1 `Security`, 2 `Low`, 3 `Medium`, 4 `High`) + 8 for
/// malicious files + 16 for unsafe settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RiskDigits(pub(super) i64);

impl RiskDigits {
    pub(super) fn severity(self) -> Option<Severity> {
        match self.0 % 8 {
            1 => Some(Severity::Security),
            2 => Some(Severity::Low),
            3 => Some(Severity::Medium),
            4 => Some(Severity::High),
            _ => None,
        }
    }
    fn malicious_files(self) -> bool {
        self.0 / 8 % 2 == 1
    }
    fn unsafe_settings(self) -> bool {
        self.0 / 16 % 2 == 1
    }
}

/// Each target's findings from `(target, packed_risk, images)` groups, which come ordered by
/// target: a few groups per target, however many images.
pub(super) fn count_risks(groups: Vec<(String, i64, i64)>) -> Vec<RiskCounts> {
    let mut counts: Vec<RiskCounts> = Vec::new();
    for (target, packed, images) in groups {
        let images = u64::try_from(images).unwrap_or(0);
        let risk = RiskDigits(packed);
        if counts.last().is_none_or(|c| c.target != target) {
            counts.push(RiskCounts {
                target,
                ..RiskCounts::default()
            });
        }
        let Some(count) = counts.last_mut() else {
            continue;
        };
        if let Some(severity) = risk.severity() {
            *count.by_severity.entry(severity).or_default() += images;
        }
        if risk.malicious_files() {
            count.with_malicious_files += images;
        }
        if risk.unsafe_settings() {
            count.with_unsafe_settings += images;
        }
    }
    counts
}

/// Image counts in the order `status` shows them: by target, type and status, byte order.
pub(super) fn sort_counts(counts: &mut [ImageCount]) {
    counts.sort_by(|a, b| {
        (&a.target, &a.image_type, &a.scan_status).cmp(&(&b.target, &b.image_type, &b.scan_status))
    });
}
