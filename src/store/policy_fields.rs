//! `images.packed_policy_fields`: the policy's fields of an image (type, status, four flags
//! and the adapter's verdict) packed into one integer as mixed-radix digits, `type +
//! 8·status + 64·scannable + 192·latest_version + 576·in_flight + 1152·unsubmittable`.
//! Each backend's schema computes the number (SQLite's migration 0006, PostgreSQL's 0001);
//! this is the one decoder. One small number per image is what lets a plan over a million
//! images read a narrow covering index instead of the table.

use crate::domain::{Candidate, ImageType, ScanStatus, Unsubmittable};

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

impl PackedPolicyFields {
    /// The candidate these fields and the row's numbers describe, without names.
    pub(super) fn candidate(
        self,
        row_id: i64,
        latest_scan_time: Option<i64>,
        last_submitted_at: Option<i64>,
        failed_submissions: i64,
    ) -> Candidate {
        Candidate {
            row_id,
            image_type: self.image_type(),
            namespace: String::new(),
            image_name: String::new(),
            image_version: String::new(),
            unsubmittable: self.unsubmittable(),
            scan_status: self.scan_status(),
            latest_scan_time,
            scannable: self.scannable(),
            latest_version: self.latest_version(),
            last_submitted_at,
            in_flight: self.in_flight(),
            failed_submissions: u32::try_from(failed_submissions).unwrap_or(u32::MAX),
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
    fn in_flight(self) -> bool {
        self.0 / 576 % 2 == 1
    }
    fn unsubmittable(self) -> Option<Unsubmittable> {
        u8::try_from(self.0 / 1152)
            .map_or(Some(Unsubmittable::FieldTooLong), Unsubmittable::from_code)
    }
}
