//! An image as the inventory knows it, and the identity a scan call names it by.

use serde::{Deserialize, Serialize};

use super::open_enum::open_enum;

open_enum! {
    /// Where HSS found an image; the list and scan calls take one type at a time.
    pub enum ImageType {
        /// An image in the account's own SWR organisations.
        Private => "private_image",
        /// An image another account shared with this one.
        Shared => "shared_image",
        /// An image in an SWR enterprise instance.
        Instance => "instance_image",
        /// An image in a Harbor registry connected to HSS (`hss-scand registry add`).
        Harbor => "harbor",
        /// An image in a JFrog registry connected to HSS.
        Jfrog => "jfrog",
    }
}

impl ImageType {
    /// An image of a third-party registry (Harbor, JFrog): only HSS's current API lists and
    /// scans these, and the same name and tag in two such registries are two images.
    pub fn is_third_party(&self) -> bool {
        matches!(self, ImageType::Harbor | ImageType::Jfrog)
    }
}

open_enum! {
    /// The scan status HSS reports for an image.
    pub enum ScanStatus {
        Unscan => "unscan",
        Success => "success",
        Scanning => "scanning",
        Failed => "failed",
        DownloadFailed => "download_failed",
        ImageOversized => "image_oversized",
        WaitingForScan => "waiting_for_scan",
    }
}

impl ScanStatus {
    /// A scan that has reached an end: nothing more will happen without a new submission.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            ScanStatus::Success
                | ScanStatus::Failed
                | ScanStatus::DownloadFailed
                | ScanStatus::ImageOversized
        )
    }

    /// A scan HSS is still working on.
    pub fn is_in_progress(&self) -> bool {
        matches!(self, ScanStatus::Scanning | ScanStatus::WaitingForScan)
    }
}

/// Why the HSS API that listed an image cannot take it in a scan call as it is. The adapter
/// that converts a listing record decides this from its own API's limits, so the policy
/// excludes such an image without knowing any API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsubmittable {
    /// A namespace, name, tag or instance field is empty or longer than the call accepts.
    FieldTooLong,
    /// A multi-architecture image: HSS scans none of them, by hand or on a schedule.
    MultiArchitecture,
    /// A shared image whose share has expired: HSS scans shared images only while valid.
    ExpiredShare,
    /// The listing record lacks what the scan call names an image by (its record id, digest
    /// or registry).
    IncompleteIdentity,
}

impl Unsubmittable {
    pub const ALL: [Unsubmittable; 4] = [
        Unsubmittable::FieldTooLong,
        Unsubmittable::MultiArchitecture,
        Unsubmittable::ExpiredShare,
        Unsubmittable::IncompleteIdentity,
    ];

    /// The stored code: 0 means submittable, so a new reason is a new number, never a
    /// renumbering.
    pub fn code(self) -> u8 {
        match self {
            Unsubmittable::FieldTooLong => 1,
            Unsubmittable::MultiArchitecture => 2,
            Unsubmittable::ExpiredShare => 3,
            Unsubmittable::IncompleteIdentity => 4,
        }
    }

    /// The reason a stored code stands for; `None` for 0 (submittable). A code this version
    /// does not know is still a reason not to submit.
    pub fn from_code(code: u8) -> Option<Unsubmittable> {
        match code {
            0 => None,
            2 => Some(Unsubmittable::MultiArchitecture),
            3 => Some(Unsubmittable::ExpiredShare),
            4 => Some(Unsubmittable::IncompleteIdentity),
            _ => Some(Unsubmittable::FieldTooLong),
        }
    }
}

/// The risk level HSS gives an image after a scan (`severity_level`), from lowest to highest.
/// `Security` is the lowest: HSS found nothing worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Security,
    Low,
    Medium,
    High,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Security,
        Severity::Low,
        Severity::Medium,
        Severity::High,
    ];

    /// As HSS writes it, and as the `severity` label of the metrics shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Security => "Security",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
        }
    }

    /// The level `severity_level` names; `None` for an empty or unknown text.
    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One image version as HSS lists it, after the wire model's lenient parsing. Fields HSS did
/// not send, or sent in a shape that could not be read, are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// HSS's id of this listing record (int64 on the wire).
    pub hss_record_id: Option<i64>,
    pub image_type: ImageType,
    pub namespace: String,
    pub image_name: String,
    pub image_version: String,
    /// SWR enterprise instance id; empty for the shared SWR edition.
    pub instance_id: String,
    pub instance_name: String,
    pub instance_url: String,
    /// HSS's id of the image content.
    pub hss_image_id: String,
    pub image_digest: String,
    pub latest_version: Option<bool>,
    pub scan_status: ScanStatus,
    pub scan_failed_desc: String,
    pub image_size: Option<i64>,
    /// Milliseconds since the Unix epoch, UTC.
    pub latest_update_time: Option<i64>,
    /// Milliseconds since the Unix epoch, UTC.
    pub latest_scan_time: Option<i64>,
    pub vul_num: Option<i64>,
    pub unsafe_setting_num: Option<i64>,
    pub malicious_file_num: Option<i64>,
    pub domain_name: String,
    pub shared_status: String,
    pub scannable: Option<bool>,
    /// The registry HSS lists it under (current API only; empty from the deprecated one).
    pub registry_id: String,
    pub registry_name: String,
    /// `SwrPrivate`, `SwrShared`, `SwrEnterprise`, `Harbor`, `Jfrog` or `Other`.
    pub registry_type: String,
    /// When HSS last synced it from its registry (ms; current API only).
    pub latest_sync_time: Option<i64>,
    /// Why its last scan failed, as a code (`download_failed`, `image_over_sized`, …).
    pub scan_failed_code: String,
    /// `Security`, `Low`, `Medium` or `High` after a scan; empty before.
    pub severity_level: String,
    pub is_multiple_arch: Option<bool>,
    /// Set by the adapter that listed it: why its API cannot take this image in a scan call.
    pub unsubmittable: Option<Unsubmittable>,
}

impl Image {
    /// What a scan call names this image by.
    pub fn identity(&self) -> ImageIdentity {
        ImageIdentity {
            hss_record_id: self.hss_record_id,
            image_digest: self.image_digest.clone(),
            namespace: self.namespace.clone(),
            image_name: self.image_name.clone(),
            image_version: self.image_version.clone(),
            instance_id: self.instance_id.clone(),
            instance_url: self.instance_url.clone(),
            registry_id: self.registry_id.clone(),
            registry_name: self.registry_name.clone(),
            registry_type: self.registry_type.clone(),
        }
    }

    /// For tests: `ns/{name}:v1`, a private image that is scannable, the latest version and
    /// never scanned, with every other field empty.
    #[cfg(test)]
    pub(crate) fn example(name: &str) -> Image {
        Image {
            hss_record_id: Some(1),
            image_type: ImageType::Private,
            namespace: "ns".into(),
            image_name: name.into(),
            image_version: "v1".into(),
            instance_id: String::new(),
            instance_name: String::new(),
            instance_url: String::new(),
            hss_image_id: String::new(),
            image_digest: String::new(),
            latest_version: Some(true),
            scan_status: ScanStatus::Unscan,
            scan_failed_desc: String::new(),
            image_size: None,
            latest_update_time: None,
            latest_scan_time: None,
            vul_num: None,
            unsafe_setting_num: None,
            malicious_file_num: None,
            domain_name: String::new(),
            shared_status: String::new(),
            scannable: Some(true),
            registry_id: String::new(),
            registry_name: String::new(),
            registry_type: String::new(),
            latest_sync_time: None,
            scan_failed_code: String::new(),
            severity_level: String::new(),
            is_multiple_arch: None,
            unsubmittable: None,
        }
    }
}

/// What a scan call names an image by: the fields an adapter copies into its request body
/// (the deprecated call takes the names, the current one the whole listing record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageIdentity {
    pub hss_record_id: Option<i64>,
    pub image_digest: String,
    pub namespace: String,
    pub image_name: String,
    pub image_version: String,
    /// Empty unless the image is in an SWR enterprise instance.
    pub instance_id: String,
    pub instance_url: String,
    pub registry_id: String,
    pub registry_name: String,
    pub registry_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_kept_verbatim() {
        let status: ScanStatus = "quarantined".parse().unwrap();
        assert_eq!(status, ScanStatus::Other("quarantined".into()));
        assert_eq!(status.as_str(), "quarantined");
        assert!(!status.is_known());
        assert!(!status.is_finished() && !status.is_in_progress());
    }

    #[test]
    fn known_values_round_trip_through_serde() {
        for status in ScanStatus::KNOWN {
            let json = serde_json::to_string(status).unwrap();
            let back: ScanStatus = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, status);
            assert!(back.is_known());
        }
        assert_eq!(ImageType::from("instance_image"), ImageType::Instance);
    }

    #[test]
    fn unsubmittable_codes_round_trip_and_zero_means_submittable() {
        assert_eq!(Unsubmittable::from_code(0), None);
        for why in Unsubmittable::ALL {
            assert_ne!(why.code(), 0);
            assert_eq!(Unsubmittable::from_code(why.code()), Some(why));
        }
    }
}
