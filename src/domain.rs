//! The words of the product, defined once: what an image is, its scan status, its type.
//! The wire model (`hss::model`) converts into these at the boundary; the store, the policy
//! and the metrics speak only these.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a string enum whose unknown values are kept as text rather than rejected: HSS adds
/// values without notice, and an unknown status must be counted, not fatal.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Every value this version knows, in declaration order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(text) => text,
                }
            }

            /// Whether this value is one this version knows.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $( $text => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(text))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(d)?;
                Ok(Self::from(text.as_ref()))
            }
        }
    };
}

open_enum! {
    /// Where HSS found an image; the list and batch-scan calls take one type at a time.
    pub enum ImageType {
        /// An image in the account's own SWR organisations.
        Private => "private_image",
        /// An image another account shared with this one.
        Shared => "shared_image",
        /// An image in an SWR enterprise instance.
        Instance => "instance_image",
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

/// The longest values the batch-scan call accepts for an image's identifying fields
/// (`BatchScanSwrImageInfo` in the seed page). Longer ones can be listed but never submitted.
pub mod limits {
    pub const NAMESPACE: usize = 64;
    pub const IMAGE_NAME: usize = 128;
    pub const IMAGE_VERSION: usize = 128;
    pub const INSTANCE_ID: usize = 128;
    pub const INSTANCE_URL: usize = 256;
    /// Items in one `image_info_list` (`Array Length: 0 - 10241`).
    pub const BATCH_ITEMS: usize = 10241;
    /// `limit` of the image list calls.
    pub const PAGE_SIZE: u32 = 200;
}

/// One image version as HSS lists it, after the wire model's lenient parsing. Fields HSS did
/// not send, or sent in a shape that could not be read, are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// HSS's record id (int64 on the wire).
    pub id: Option<i64>,
    pub image_type: ImageType,
    pub namespace: String,
    pub image_name: String,
    pub image_version: String,
    /// SWR enterprise instance id; empty for the shared SWR edition.
    pub instance_id: String,
    pub instance_name: String,
    pub instance_url: String,
    pub image_id: String,
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
}

/// Why an image is due for a (re)scan, in the order the policy checks them: an image gets the
/// first that applies, and at equal priority earlier reasons are submitted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueReason {
    /// HSS has never scanned it.
    NeverScanned,
    /// Its last scan failed, the retry pause has passed and retries are left.
    FailedRetry,
    /// Its last successful scan is older than `rescan_after`.
    Stale,
    /// We submitted it, HSS still shows it queued or scanning, and `scanning_timeout` passed.
    Stuck,
}

impl DueReason {
    pub const ALL: [DueReason; 4] = [
        DueReason::NeverScanned,
        DueReason::FailedRetry,
        DueReason::Stale,
        DueReason::Stuck,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DueReason::NeverScanned => "never_scanned",
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

/// One account/region/project the daemon keeps scanned (`[[targets]]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The operator's name for it; unique; used in metrics labels and the database.
    pub name: String,
    /// Huawei Cloud region id, e.g. `ap-southeast-1`.
    pub region: String,
    pub project_id: String,
    /// Empty: the default enterprise project. `all_granted_eps`: all of them.
    pub enterprise_project_id: String,
    pub image_types: Vec<ImageType>,
    /// Call `POST /image/synchronize` for each image type before listing it.
    pub trigger_swr_sync: bool,
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
}
