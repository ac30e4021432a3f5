//! Wire types of HSS's current image APIs (serde), field by field from the official SDK
//! 3.1.219 (`../shared/spec/hss-current-apis.md` section 2), lenient where the API is loose.
//! Request bodies keep the SDK models' field order, so that `wire_json` reproduces the
//! SDK's bytes, and carry only the fields that are set, as the SDK sends them. They convert
//! into [`crate::domain`] types here and nowhere else.

use serde::{Deserialize, Serialize};

use crate::domain::{
    Image, ImageIdentity, ImageType, NativeScanPolicy, PayPerScan, ScanStatus, ScanTask,
    Unsubmittable,
};
use crate::hss::ImagePage;
use crate::hss::transport::lenient::{self, Lenient, Text};

/// `GET /image/registries/images`: one page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListRegistryImagesResponse {
    #[serde(default)]
    pub total_num: Lenient<i64>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub data_list: Vec<RegistryImage>,
}

/// `RegistryImagesInfo`: one image version in one registry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RegistryImage {
    pub id: Lenient<i64>,
    pub namespace: Text,
    pub image_name: Text,
    pub image_id: Text,
    pub image_digest: Text,
    pub image_version: Text,
    pub image_type: Text,
    pub registry_id: Text,
    pub registry_name: Text,
    pub registry_type: Text,
    pub latest_version: Lenient<bool>,
    pub scan_status: Text,
    pub scan_failed_desc: Text,
    pub scan_failed_code: Text,
    pub image_size: Lenient<i64>,
    pub latest_update_time: Lenient<i64>,
    pub latest_scan_time: Lenient<i64>,
    pub latest_sync_time: Lenient<i64>,
    pub vul_num: Lenient<i64>,
    pub unsafe_setting_num: Lenient<i64>,
    pub malicious_file_num: Lenient<i64>,
    pub domain_name: Text,
    pub shared_status: Text,
    pub scannable: Lenient<bool>,
    pub is_multiple_arch: Lenient<bool>,
    pub instance_name: Text,
    pub instance_id: Text,
    pub instance_url: Text,
    pub severity_level: Text,
}

impl RegistryImage {
    /// How many fields were present but could not be read.
    pub fn unreadable_fields(&self) -> u32 {
        let numbers = [
            &self.id,
            &self.image_size,
            &self.latest_update_time,
            &self.latest_scan_time,
            &self.latest_sync_time,
            &self.vul_num,
            &self.unsafe_setting_num,
            &self.malicious_file_num,
        ];
        let flags = [
            &self.latest_version,
            &self.scannable,
            &self.is_multiple_arch,
        ];
        let texts = [
            &self.namespace,
            &self.image_name,
            &self.image_id,
            &self.image_digest,
            &self.image_version,
            &self.image_type,
            &self.registry_id,
            &self.registry_name,
            &self.registry_type,
            &self.scan_status,
            &self.scan_failed_desc,
            &self.scan_failed_code,
            &self.domain_name,
            &self.shared_status,
            &self.instance_name,
            &self.instance_id,
            &self.instance_url,
            &self.severity_level,
        ];
        numbers.iter().map(|n| n.unreadable()).sum::<u32>()
            + flags.iter().map(|f| f.unreadable()).sum::<u32>()
            + texts.iter().map(|t| t.unreadable()).sum::<u32>()
    }

    /// The domain image, with this API's verdict on whether its scan call can take it.
    /// `listed_as` is the type the page was requested for, used when HSS leaves `image_type`
    /// out. As with the deprecated API, a missing `scan_status` stays unknown rather than
    /// guessed, and a time of 0 means "never".
    pub fn into_image(self, listed_as: &ImageType) -> Image {
        let image_type = if self.image_type.value.is_empty() {
            listed_as.clone()
        } else {
            ImageType::from(self.image_type.value.as_str())
        };
        let mut image = Image {
            hss_record_id: self.id.value(),
            image_type,
            namespace: self.namespace.value,
            image_name: self.image_name.value,
            image_version: self.image_version.value,
            instance_id: self.instance_id.value,
            instance_name: self.instance_name.value,
            instance_url: self.instance_url.value,
            hss_image_id: self.image_id.value,
            image_digest: self.image_digest.value,
            latest_version: self.latest_version.value(),
            scan_status: ScanStatus::from(self.scan_status.value.as_str()),
            scan_failed_desc: self.scan_failed_desc.value,
            image_size: self.image_size.value(),
            latest_update_time: self.latest_update_time.value().filter(|t| *t > 0),
            latest_scan_time: self.latest_scan_time.value().filter(|t| *t > 0),
            vul_num: self.vul_num.value(),
            unsafe_setting_num: self.unsafe_setting_num.value(),
            malicious_file_num: self.malicious_file_num.value(),
            domain_name: self.domain_name.value,
            shared_status: self.shared_status.value,
            scannable: self.scannable.value(),
            registry_id: self.registry_id.value,
            registry_name: self.registry_name.value,
            registry_type: self.registry_type.value,
            latest_sync_time: self.latest_sync_time.value().filter(|t| *t > 0),
            scan_failed_code: self.scan_failed_code.value,
            severity_level: self.severity_level.value,
            is_multiple_arch: self.is_multiple_arch.value(),
            unsubmittable: None,
        };
        image.unsubmittable = unsubmittable(&image);
        image
    }
}

/// Whether `image_info` can name the image as listed. HSS cannot scan multi-architecture
/// images or shared images whose share expired (its user guide); and the call names an image
/// by its whole listing record, so a record without its id, digest or registry cannot be
/// named. The call documents no field lengths; empty names are refused as by the deprecated
/// call.
pub fn unsubmittable(image: &Image) -> Option<Unsubmittable> {
    if image.is_multiple_arch == Some(true) {
        Some(Unsubmittable::MultiArchitecture)
    } else if image.shared_status.eq_ignore_ascii_case("expired") {
        Some(Unsubmittable::ExpiredShare)
    } else if image.hss_record_id.is_none()
        || image.image_digest.is_empty()
        || image.registry_id.is_empty()
        || image.registry_type.is_empty()
    {
        Some(Unsubmittable::IncompleteIdentity)
    } else if image.namespace.is_empty()
        || image.image_name.is_empty()
        || image.image_version.is_empty()
    {
        Some(Unsubmittable::FieldTooLong)
    } else {
        None
    }
}

impl ListRegistryImagesResponse {
    /// The page in the domain's words.
    pub fn into_page(self, listed_as: &ImageType) -> ImagePage {
        let mut unreadable_fields = self.total_num.unreadable();
        let images = self
            .data_list
            .into_iter()
            .map(|image| {
                unreadable_fields += image.unreadable_fields();
                image.into_image(listed_as)
            })
            .collect();
        ImagePage {
            total_num: self.total_num.value(),
            images,
            unreadable_fields,
        }
    }
}

/// `CreateManualImageScanTaskReqInfo`, fields in the SDK's order. `is_all` is always false:
/// hss-scand names every image it pays for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateScanTaskRequest<'a> {
    pub scan_scope: i64,
    pub rate_limit: u32,
    pub is_all: bool,
    pub image_info: Vec<ScanTaskImage<'a>>,
}

/// `CreateManualImageScanTaskReqInfoImageInfo`: an image named by its listing record, copied
/// verbatim; the enterprise fields only for SWR enterprise images, as the SDK's docstring
/// says.
///
/// It borrows the image's fields: a batch is written once, so copying a thousand identities
/// into it was only allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanTaskImage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub image_digest: &'a str,
    pub registry_id: &'a str,
    pub registry_name: &'a str,
    pub image_name: &'a str,
    pub image_version: &'a str,
    pub namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_url: Option<&'a str>,
    pub registry_type: &'a str,
}

impl<'a> ScanTaskImage<'a> {
    pub fn for_image(image: &'a ImageIdentity) -> Self {
        let non_empty = |s: &'a str| (!s.is_empty()).then_some(s);
        ScanTaskImage {
            id: image.hss_record_id,
            image_digest: &image.image_digest,
            registry_id: &image.registry_id,
            registry_name: &image.registry_name,
            image_name: &image.image_name,
            image_version: &image.image_version,
            namespace: &image.namespace,
            instance_id: non_empty(&image.instance_id),
            instance_url: non_empty(&image.instance_url),
            registry_type: &image.registry_type,
        }
    }
}

/// `CreateImageSynchronizeTaskRequestInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateSyncTaskRequest {
    pub sync_all_registries: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registry_info: Vec<SyncRegistry>,
}

/// `CreateImageSynchronizeTaskRequestInfoRegistryInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SyncRegistry {
    pub registry_id: String,
    pub registry_type: String,
}

/// `GET /image/tasks`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListTasksResponse {
    #[serde(default)]
    pub total_num: Lenient<i64>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub data_list: Vec<TaskInfo>,
}

/// `ImageScanTaskInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TaskInfo {
    pub task_id: Text,
    pub task_type: Text,
    pub begin_time: Lenient<i64>,
    pub end_time: Lenient<i64>,
    pub task_status: Lenient<i64>,
    pub is_all: Lenient<bool>,
    pub total_num: Lenient<i64>,
    pub success_num: Lenient<i64>,
    pub failed_num: Lenient<i64>,
    #[serde(deserialize_with = "lenient::null_as_empty")]
    pub failed_images: Vec<FailedImage>,
}

/// `ImageScanTaskInfoFailedImages`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FailedImage {
    pub id: Lenient<i64>,
    pub failed_reason: Text,
}

impl TaskInfo {
    /// The task in the domain's words; `None` without a readable id or progress.
    pub fn into_task(self) -> Option<ScanTask> {
        if self.task_id.value.is_empty() {
            return None;
        }
        Some(ScanTask {
            task_id: self.task_id.value,
            progress: self.task_status.value()?,
            total: self.total_num.value(),
            succeeded: self.success_num.value(),
            failed: self.failed_num.value(),
            failed_images: self
                .failed_images
                .into_iter()
                .map(|f| (f.id.value(), f.failed_reason.value))
                .collect(),
        })
    }
}

/// `GET /image/scanner-policies?type=cycle`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ScanPolicyResponse {
    pub is_all: Lenient<bool>,
    pub enabled: Lenient<bool>,
    pub scan_cycle: Lenient<i64>,
    pub rate_limit: Lenient<i64>,
    pub time_scope: Lenient<i64>,
    #[serde(deserialize_with = "lenient::null_as_empty")]
    pub registry_list: Vec<PolicyRegistry>,
}

/// `ImageScanPolicyRespInfoRegistryList`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PolicyRegistry {
    pub is_selected: Lenient<bool>,
    pub registry_name: Text,
    pub registry_id: Text,
}

impl ScanPolicyResponse {
    /// The policy in the domain's words. An `enabled` HSS did not send reads as off.
    pub fn into_policy(self) -> NativeScanPolicy {
        NativeScanPolicy {
            enabled: self.enabled.value().unwrap_or(false),
            scan_cycle_days: self.scan_cycle.value(),
            time_scope_days: self.time_scope.value(),
            all_registries: self.is_all.value().unwrap_or(false),
            rate_limit: self.rate_limit.value(),
            registries: self
                .registry_list
                .into_iter()
                .filter(|r| r.is_selected.value() == Some(true))
                .map(|r| {
                    if r.registry_name.value.is_empty() {
                        r.registry_id.value
                    } else {
                        r.registry_name.value
                    }
                })
                .collect(),
        }
    }
}

/// `GET /image/pay-per-scan/statistics`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PayPerScanStatistics {
    pub repository_scan_num: Lenient<i64>,
    pub cicd_scan_num: Lenient<i64>,
    pub free_quota_num: Lenient<i64>,
    pub total: ImageTypeRiskInfo,
    pub unscan: ImageTypeRiskInfo,
}

/// `ImageTypeRiskInfo`: counts per class of image. `registry` appeared in SDK 3.1.208 beside
/// the misspelt `registriy`, which older servers send alone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImageTypeRiskInfo {
    pub registry: Lenient<i64>,
    pub registriy: Lenient<i64>,
}

impl ImageTypeRiskInfo {
    fn registry(&self) -> Option<i64> {
        self.registry.value().or(self.registriy.value())
    }
}

impl PayPerScanStatistics {
    pub fn into_pay_per_scan(self, enabled: Option<bool>) -> PayPerScan {
        PayPerScan {
            enabled,
            repository_scans: self.repository_scan_num.value(),
            cicd_scans: self.cicd_scan_num.value(),
            free_quota: self.free_quota_num.value(),
            registry_images: self.total.registry(),
            registry_images_unscanned: self.unscan.registry(),
        }
    }
}

/// `GET /setting/switches/{code}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SwitchStatus {
    pub enabled: Lenient<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Image {
        serde_json::from_str::<RegistryImage>(json)
            .expect("a record")
            .into_image(&ImageType::Harbor)
    }

    #[test]
    fn a_full_record_is_submittable_and_keeps_every_field() {
        let image = record(
            r#"{"id": "1234567890123", "namespace": "library", "image_name": "nginx",
                "image_version": "1.25", "image_digest": "sha256:aa", "image_type": "harbor",
                "registry_id": "r-1", "registry_name": "harbor-prod", "registry_type": "Harbor",
                "scan_status": "success", "scan_failed_code": "", "latest_sync_time": 1700000000000,
                "severity_level": "High", "is_multiple_arch": false, "latest_scan_time": 0,
                "association_images": [{"id": 7}]}"#,
        );
        assert_eq!(image.hss_record_id, Some(1_234_567_890_123));
        assert_eq!(image.image_type, ImageType::Harbor);
        assert_eq!(
            (image.registry_id.as_str(), image.registry_type.as_str()),
            ("r-1", "Harbor")
        );
        assert_eq!(image.latest_sync_time, Some(1_700_000_000_000));
        assert_eq!(image.latest_scan_time, None, "0 means never");
        assert_eq!(image.severity_level, "High");
        assert_eq!(image.unsubmittable, None);
        let identity = image.identity();
        let item = ScanTaskImage::for_image(&identity);
        assert_eq!(
            wire(&item),
            r#"{"id": 1234567890123, "image_digest": "sha256:aa", "registry_id": "r-1", "registry_name": "harbor-prod", "image_name": "nginx", "image_version": "1.25", "namespace": "library", "registry_type": "Harbor"}"#
        );
    }

    fn wire<T: Serialize>(value: &T) -> String {
        String::from_utf8(crate::hss::transport::wire_json::to_vec(value).unwrap()).unwrap()
    }

    #[test]
    fn what_hss_cannot_scan_is_marked_with_why() {
        let base = r#""id": 1, "namespace": "n", "image_name": "a", "image_version": "v",
            "image_digest": "sha256:aa", "registry_id": "r", "registry_type": "Harbor""#;
        let cases = [
            (
                format!("{{{base}, \"is_multiple_arch\": true}}"),
                Some(Unsubmittable::MultiArchitecture),
            ),
            (
                format!("{{{base}, \"shared_status\": \"expired\"}}"),
                Some(Unsubmittable::ExpiredShare),
            ),
            (
                format!("{{{base}, \"shared_status\": \"effective\"}}"),
                None,
            ),
            (
                format!(
                    "{{{}}}",
                    base.replace("\"image_digest\": \"sha256:aa\",", "")
                ),
                Some(Unsubmittable::IncompleteIdentity),
            ),
            (
                format!("{{{}}}", base.replace("\"id\": 1,", "")),
                Some(Unsubmittable::IncompleteIdentity),
            ),
            (
                format!("{{{}}}", base.replace("\"image_version\": \"v\",", "")),
                Some(Unsubmittable::FieldTooLong),
            ),
        ];
        for (json, want) in cases {
            assert_eq!(record(&json).unsubmittable, want, "{json}");
        }
    }

    #[test]
    fn the_scan_task_body_is_the_sdks_to_the_byte() {
        let body = CreateScanTaskRequest {
            scan_scope: 2_147_483_647,
            rate_limit: 0,
            is_all: false,
            image_info: vec![ScanTaskImage {
                id: Some(1_234_567_890_123),
                image_digest: "sha256:bb",
                registry_id: "r-1",
                registry_name: "SWR-private",
                image_name: "app",
                image_version: "v1",
                namespace: "ns",
                instance_id: None,
                instance_url: None,
                registry_type: "SwrPrivate",
            }],
        };
        // The bytes the SDK 3.1.219 sent (spec section 2.0, create_manual_image_scan_task).
        assert_eq!(
            wire(&body),
            r#"{"scan_scope": 2147483647, "rate_limit": 0, "is_all": false, "image_info": [{"id": 1234567890123, "image_digest": "sha256:bb", "registry_id": "r-1", "registry_name": "SWR-private", "image_name": "app", "image_version": "v1", "namespace": "ns", "registry_type": "SwrPrivate"}]}"#
        );
        let sync = CreateSyncTaskRequest {
            sync_all_registries: false,
            registry_info: vec![SyncRegistry {
                registry_id: "r-1".into(),
                registry_type: "SwrPrivate".into(),
            }],
        };
        assert_eq!(
            wire(&sync),
            r#"{"sync_all_registries": false, "registry_info": [{"registry_id": "r-1", "registry_type": "SwrPrivate"}]}"#
        );
    }

    #[test]
    fn tasks_policies_and_statistics_read_leniently() {
        let tasks: ListTasksResponse = serde_json::from_str(
            r#"{"total_num": 1, "data_list": [{"task_id": "t-1", "task_status": "45",
                "begin_time": 1700000000000, "is_all": false, "total_num": 3,
                "failed_images": [{"id": 9, "failed_reason": "download_failed"}]}]}"#,
        )
        .unwrap();
        let task = tasks.data_list[0].clone().into_task().expect("a task");
        assert_eq!(
            (task.task_id.as_str(), task.progress, task.total),
            ("t-1", 45, Some(3))
        );
        assert_eq!(
            task.failed_images,
            [(Some(9), "download_failed".to_owned())]
        );

        let policy: ScanPolicyResponse = serde_json::from_str(
            r#"{"enabled": true, "scan_cycle": 7, "time_scope": 0, "is_all": false,
                "registry_list": [{"is_selected": true, "registry_name": "harbor-prod"},
                                  {"is_selected": false, "registry_name": "other"}]}"#,
        )
        .unwrap();
        let policy = policy.into_policy();
        assert!(policy.enabled);
        assert_eq!(policy.registries, ["harbor-prod"]);

        let old: PayPerScanStatistics = serde_json::from_str(
            r#"{"repository_scan_num": 12, "total": {"registriy": 40}, "unscan": {"registry": 5, "registriy": 6}}"#,
        )
        .unwrap();
        let billing = old.into_pay_per_scan(Some(true));
        assert_eq!(billing.repository_scans, Some(12));
        assert_eq!(
            billing.registry_images,
            Some(40),
            "the misspelt field alone"
        );
        assert_eq!(
            billing.registry_images_unscanned,
            Some(5),
            "the new field first"
        );
    }
}
