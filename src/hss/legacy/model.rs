//! Wire types of the deprecated SWR endpoints (serde), lenient where the API is loose (see
//! [`lenient`]). Field order of request bodies follows the SDK's models, so that
//! `wire_json` reproduces the SDK's bytes. They convert into [`crate::domain`] types here and
//! nowhere else.

use serde::{Deserialize, Serialize};

use super::limits;
use crate::domain::{Image, ImageIdentity, ImageType, ScanStatus};
use crate::hss::ImagePage;
use crate::hss::transport::lenient::{self, Lenient, Text};

/// `GET /v5/{project_id}/image/swr-repository`: one page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListSwrImagesResponse {
    #[serde(default)]
    pub total_num: Lenient<i64>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub data_list: Vec<WireImage>,
}

/// `PrivateImageRepositoryInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WireImage {
    pub id: Lenient<i64>,
    pub namespace: Text,
    pub image_name: Text,
    pub image_id: Text,
    pub image_digest: Text,
    pub image_version: Text,
    pub image_type: Text,
    pub latest_version: Lenient<bool>,
    pub scan_status: Text,
    pub scan_failed_desc: Text,
    pub image_size: Lenient<i64>,
    pub latest_update_time: Lenient<i64>,
    pub latest_scan_time: Lenient<i64>,
    pub vul_num: Lenient<i64>,
    pub unsafe_setting_num: Lenient<i64>,
    pub malicious_file_num: Lenient<i64>,
    pub domain_name: Text,
    pub shared_status: Text,
    pub scannable: Lenient<bool>,
    pub instance_name: Text,
    pub instance_id: Text,
    pub instance_url: Text,
}

impl WireImage {
    /// How many fields were present but could not be read.
    pub fn unreadable_fields(&self) -> u32 {
        let numbers = [
            &self.id,
            &self.image_size,
            &self.latest_update_time,
            &self.latest_scan_time,
            &self.vul_num,
            &self.unsafe_setting_num,
            &self.malicious_file_num,
        ];
        let texts = [
            &self.namespace,
            &self.image_name,
            &self.image_id,
            &self.image_digest,
            &self.image_version,
            &self.image_type,
            &self.scan_status,
            &self.scan_failed_desc,
            &self.domain_name,
            &self.shared_status,
            &self.instance_name,
            &self.instance_id,
            &self.instance_url,
        ];
        numbers.iter().map(|n| n.unreadable()).sum::<u32>()
            + self.latest_version.unreadable()
            + self.scannable.unreadable()
            + texts.iter().map(|t| t.unreadable()).sum::<u32>()
    }

    /// The domain image. `listed_as` is the type the page was requested for, used when HSS
    /// leaves `image_type` out. A missing `scan_status` becomes an unknown (empty) status
    /// rather than a guess: guessing `unscan` would pay for a scan HSS may already have done.
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
            // HSS sends 0 for "never": keep that as no time rather than the year 1970.
            latest_update_time: self.latest_update_time.value().filter(|t| *t > 0),
            latest_scan_time: self.latest_scan_time.value().filter(|t| *t > 0),
            vul_num: self.vul_num.value(),
            unsafe_setting_num: self.unsafe_setting_num.value(),
            malicious_file_num: self.malicious_file_num.value(),
            domain_name: self.domain_name.value,
            shared_status: self.shared_status.value,
            scannable: self.scannable.value(),
            // The deprecated list call knows no registries and none of these fields.
            registry_id: String::new(),
            registry_name: String::new(),
            registry_type: String::new(),
            latest_sync_time: None,
            scan_failed_code: String::new(),
            severity_level: String::new(),
            is_multiple_arch: None,
            unsubmittable: None,
        };
        image.unsubmittable = limits::unsubmittable(&image);
        image
    }
}

impl ListSwrImagesResponse {
    /// The page in the domain's words. `listed_as` is the type the page was requested for.
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

/// Query of the image list. Only the filters the daemon uses are typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSwrImages {
    pub image_type: ImageType,
    pub offset: u32,
    pub limit: u32,
    /// Empty: not sent (the default enterprise project).
    pub enterprise_project_id: String,
    pub latest_version: Option<bool>,
    pub scan_status: Option<ScanStatus>,
}

impl ListSwrImages {
    pub fn query(&self) -> Vec<(String, String)> {
        let mut q = vec![
            ("image_type".to_owned(), self.image_type.as_str().to_owned()),
            ("offset".to_owned(), self.offset.to_string()),
            ("limit".to_owned(), self.limit.to_string()),
        ];
        if !self.enterprise_project_id.is_empty() {
            q.push((
                "enterprise_project_id".into(),
                self.enterprise_project_id.clone(),
            ));
        }
        if let Some(latest) = self.latest_version {
            q.push(("latest_version".into(), latest.to_string()));
        }
        if let Some(status) = &self.scan_status {
            q.push(("scan_status".into(), status.as_str().to_owned()));
        }
        q
    }
}

/// `BatchScanPrivateImageRequestInfo`, fields in the SDK's order; `None` is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchScanRequest<'a> {
    pub image_info_list: Vec<BatchScanItem<'a>>,
    pub operate_all: bool,
    pub image_type: ImageType,
}

/// `BatchScanSwrImageInfo`: the identity of one image to scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchScanItem<'a> {
    pub namespace: &'a str,
    pub image_name: &'a str,
    pub image_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_url: Option<&'a str>,
}

impl<'a> BatchScanItem<'a> {
    /// The item for an image, borrowing its fields; enterprise fields only for enterprise
    /// images, as the SDK does.
    pub fn for_image(image: &'a ImageIdentity) -> Self {
        let non_empty = |s: &'a str| (!s.is_empty()).then_some(s);
        BatchScanItem {
            namespace: &image.namespace,
            image_name: &image.image_name,
            image_version: &image.image_version,
            instance_id: non_empty(&image.instance_id),
            instance_url: non_empty(&image.instance_url),
        }
    }
}

/// `POST /image/synchronize` body.
#[derive(Debug, Clone, Serialize)]
pub struct SynchronizeRequest {
    pub image_type: ImageType,
}

/// `POST /image/synchronize` answer: HTTP 200 even when it failed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SynchronizeResponse {
    pub error_code: Lenient<i64>,
    pub error_description: Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_accept_numeric_strings_and_count_the_rest() {
        let wire: WireImage = serde_json::from_str(
            r#"{"id": "111 (example)", "image_size": "1000", "latest_scan_time": 1691748641788,
                "vul_num": 1.0, "scannable": "yes", "namespace": {"x": 1}, "unknown": [1]}"#,
        )
        .unwrap();
        assert_eq!(wire.id, Lenient::Unreadable);
        assert_eq!(wire.image_size, Lenient::Value(1000));
        assert_eq!(wire.latest_scan_time, Lenient::Value(1_691_748_641_788));
        assert_eq!(wire.vul_num, Lenient::Value(1));
        assert_eq!(wire.scannable, Lenient::Unreadable);
        assert_eq!(wire.unreadable_fields(), 3, "id, scannable, namespace");
    }

    #[test]
    fn the_adapter_marks_images_its_batch_scan_call_cannot_take() {
        let wire: WireImage = serde_json::from_str(
            r#"{"namespace": "ns", "image_name": "app", "image_version": "v1"}"#,
        )
        .unwrap();
        assert_eq!(wire.into_image(&ImageType::Private).unsubmittable, None);
        let wire: WireImage =
            serde_json::from_str(r#"{"namespace": "ns", "image_name": "app"}"#).unwrap();
        assert_eq!(
            wire.into_image(&ImageType::Private).unsubmittable,
            Some(crate::domain::Unsubmittable::FieldTooLong),
            "no tag"
        );
    }

    #[test]
    fn a_zero_time_means_never() {
        let wire: WireImage =
            serde_json::from_str(r#"{"latest_scan_time": 0, "latest_update_time": "0"}"#).unwrap();
        let image = wire.into_image(&ImageType::Private);
        assert_eq!(
            (image.latest_scan_time, image.latest_update_time),
            (None, None)
        );
    }

    #[test]
    fn missing_and_null_are_not_unreadable() {
        let wire: WireImage = serde_json::from_str(r#"{"id": null, "namespace": null}"#).unwrap();
        assert_eq!(wire.unreadable_fields(), 0);
        let image = wire.into_image(&ImageType::Shared);
        assert_eq!(image.image_type, ImageType::Shared);
        assert_eq!(image.hss_record_id, None);
    }
}
