//! Wire types of the HSS image APIs (serde), lenient where the API is loose.
//!
//! * An int64 field accepts a JSON number or a numeric string (the seed page's own example
//!   sends `"id": "111 (example …)"`); anything else leaves the field empty and is counted in
//!   [`ImagePage::unreadable_fields`], never fatal.
//! * Unknown enum values are kept as text ([`ScanStatus::Other`]); unknown fields are ignored.
//! * Field order of request bodies follows the SDK's models, so that [`super::wire_json`]
//!   reproduces the SDK's bytes.
//!
//! The wire types convert into [`crate::domain`] types here and nowhere else.

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::domain::{Image, ImageType, ScanStatus};

/// A field read leniently: absent (or `null`), a usable value, or present but unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lenient<T> {
    #[default]
    Missing,
    Value(T),
    Unreadable,
}

impl<T> Lenient<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Lenient::Value(v) => Some(v),
            _ => None,
        }
    }

    fn unreadable(&self) -> u32 {
        u32::from(matches!(self, Lenient::Unreadable))
    }
}

// Visitors rather than a detour through `serde_json::Value`: a page has 200 images of 20
// fields each, and building a `Value` per field made parsing the slowest step of a re-sync.

/// Reads any JSON value, keeping what fits and marking the rest unreadable.
macro_rules! lenient_visitor {
    ($visitor:ident, $out:ty, $expecting:literal,
     missing => $missing:expr, unreadable => $unreadable:expr,
     $($method:ident($arg:ident: $ty:ty) => $body:expr),* $(,)?) => {
        struct $visitor;
        impl<'de> Visitor<'de> for $visitor {
            type Value = $out;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($expecting)
            }
            fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
                Ok($missing)
            }
            fn visit_none<E: de::Error>(self) -> Result<$out, E> {
                Ok($missing)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<$out, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<$out, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok($unreadable)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<$out, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok($unreadable)
            }
            $(fn $method<E: de::Error>(self, $arg: $ty) -> Result<$out, E> {
                Ok($body)
            })*
        }
    };
}

lenient_visitor!(NumberVisitor, Lenient<i64>, "an integer or a numeric string",
    missing => Lenient::Missing, unreadable => Lenient::Unreadable,
    visit_bool(_v: bool) => Lenient::Unreadable,
    visit_i64(v: i64) => Lenient::Value(v),
    visit_u64(v: u64) => i64::try_from(v).map_or(Lenient::Unreadable, Lenient::Value),
    // An integral float (`1.0`) is a number in JSON's eyes; `1.5` is not an id.
    visit_f64(v: f64) => if v.fract() == 0.0 && v.abs() < 9.0e18 {
        Lenient::Value(v as i64)
    } else {
        Lenient::Unreadable
    },
    visit_str(v: &str) => v.trim().parse().map_or(Lenient::Unreadable, Lenient::Value),
);

lenient_visitor!(FlagVisitor, Lenient<bool>, "a boolean",
    missing => Lenient::Missing, unreadable => Lenient::Unreadable,
    visit_bool(v: bool) => Lenient::Value(v),
    visit_i64(_v: i64) => Lenient::Unreadable,
    visit_u64(_v: u64) => Lenient::Unreadable,
    visit_f64(_v: f64) => Lenient::Unreadable,
    visit_str(v: &str) => if v.eq_ignore_ascii_case("true") {
        Lenient::Value(true)
    } else if v.eq_ignore_ascii_case("false") {
        Lenient::Value(false)
    } else {
        Lenient::Unreadable
    },
);

lenient_visitor!(TextVisitor, Text, "a string",
    missing => Text::default(), unreadable => Text { value: String::new(), unreadable: true },
    visit_bool(v: bool) => Text { value: v.to_string(), unreadable: false },
    visit_i64(v: i64) => Text { value: v.to_string(), unreadable: false },
    visit_u64(v: u64) => Text { value: v.to_string(), unreadable: false },
    visit_f64(v: f64) => Text { value: v.to_string(), unreadable: false },
    visit_str(v: &str) => Text { value: v.to_owned(), unreadable: false },
    visit_string(v: String) => Text { value: v, unreadable: false },
);

impl<'de> Deserialize<'de> for Lenient<i64> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor)
    }
}

impl<'de> Deserialize<'de> for Lenient<bool> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FlagVisitor)
    }
}

/// A text field: a string, or a number printed as text; `null`/absent is empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    pub value: String,
    unreadable: bool,
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

/// `GET /v5/{project_id}/image/swr-repository`: one page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListSwrImagesResponse {
    #[serde(default)]
    pub total_num: Lenient<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub data_list: Vec<WireImage>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
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
            + texts.iter().map(|t| u32::from(t.unreadable)).sum::<u32>()
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
        Image {
            id: self.id.value(),
            image_type,
            namespace: self.namespace.value,
            image_name: self.image_name.value,
            image_version: self.image_version.value,
            instance_id: self.instance_id.value,
            instance_name: self.instance_name.value,
            instance_url: self.instance_url.value,
            image_id: self.image_id.value,
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
        }
    }
}

/// One page of the image list, converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePage {
    /// `total_num` as HSS reported it for this page; `None` when absent or unreadable, which a
    /// sync must treat as "cannot prove the listing complete".
    pub total_num: Option<i64>,
    pub images: Vec<Image>,
    /// Fields present on the wire that could not be read (left empty instead).
    pub unreadable_fields: u32,
}

impl ImagePage {
    pub fn from_wire(wire: ListSwrImagesResponse, listed_as: &ImageType) -> Self {
        let mut unreadable_fields = wire.total_num.unreadable();
        let images = wire
            .data_list
            .into_iter()
            .map(|image| {
                unreadable_fields += image.unreadable_fields();
                image.into_image(listed_as)
            })
            .collect();
        ImagePage {
            total_num: wire.total_num.value(),
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
pub struct BatchScanRequest {
    pub image_info_list: Vec<BatchScanItem>,
    pub operate_all: bool,
    pub image_type: ImageType,
}

/// `BatchScanSwrImageInfo`: the identity of one image to scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchScanItem {
    pub namespace: String,
    pub image_name: String,
    pub image_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_url: Option<String>,
}

impl BatchScanItem {
    /// The item for an image; enterprise fields only for enterprise images, as the SDK does.
    pub fn for_image(image: &Image) -> Self {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        BatchScanItem {
            namespace: image.namespace.clone(),
            image_name: image.image_name.clone(),
            image_version: image.image_version.clone(),
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

/// `AddRegistryRequestBody`. The password is a secret until the moment it is serialised.
#[derive(Debug, Clone, Serialize)]
pub struct AddRegistryRequest {
    pub registry_name: String,
    pub registry_type: String,
    pub api_version: String,
    pub protocol: String,
    pub registry_addr: String,
    pub registry_username: String,
    #[serde(serialize_with = "expose")]
    pub registry_password: SecretString,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub connect_cluster_id: String,
    pub get_scan_image_channel: String,
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// Query of `GET /image/registries/image-upload-command`: the password travels in the URL,
/// so the client never logs that URL.
#[derive(Debug, Clone)]
pub struct UploadCommandRequest {
    pub registry_addr: String,
    pub namespace: String,
    pub username: String,
    pub password: SecretString,
}

impl UploadCommandRequest {
    pub fn query(&self) -> Vec<(String, String)> {
        vec![
            ("registry_addr".into(), self.registry_addr.clone()),
            ("namespace".into(), self.namespace.clone()),
            ("username".into(), self.username.clone()),
            ("password".into(), self.password.expose_secret().to_owned()),
        ]
    }
}

/// `GET /image/registries/image-upload-command` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UploadCommand {
    pub image_command: String,
    pub images_download_url: String,
    pub swr_image_pull_command: String,
}

/// `GET /image/registries` answer: one page of the third-party registries.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListRegistriesResponse {
    #[serde(default)]
    pub total_num: Lenient<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub data_list: Vec<RegistryInfo>,
}

/// `RegistryInfo`: one registry connected to HSS, read leniently (a field that is absent,
/// `null` or of another type is empty). The id is a string here, unlike image ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryInfo {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub registry_name: String,
    /// `Harbor`, `Jfrog`, `SwrPrivate`, `SwrShared`, `SwrEnterprise` or `Other`.
    #[serde(deserialize_with = "text")]
    pub registry_type: String,
    /// `V1` or `V2`.
    #[serde(deserialize_with = "text")]
    pub api_version: String,
    #[serde(deserialize_with = "text")]
    pub protocol: String,
    #[serde(deserialize_with = "text")]
    pub registry_addr: String,
    #[serde(deserialize_with = "text")]
    pub registry_username: String,
    #[serde(deserialize_with = "text")]
    pub namespace: String,
    #[serde(deserialize_with = "text")]
    pub connect_cluster_id: String,
    /// `Swr` or `Other`.
    #[serde(deserialize_with = "text")]
    pub get_scan_image_channel: String,
    /// `success`, `fail` or `accessing`.
    #[serde(deserialize_with = "text")]
    pub status: String,
    /// `CREATE_JOB_FAILED`, `REQUEST_API_ERROR` or `SERVER_ERROR`.
    #[serde(deserialize_with = "text")]
    pub fail_reason: String,
    #[serde(deserialize_with = "number")]
    pub images_num: Option<i64>,
    /// Epoch milliseconds.
    #[serde(deserialize_with = "number")]
    pub latest_sync_time: Option<i64>,
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Text::deserialize(d).map(|text| text.value)
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Lenient::<i64>::deserialize(d).map(Lenient::value)
}

/// The error bodies the SDK's `DefaultExceptionHandler` recognises, tried in its order:
/// `error_code/error_msg`, `errorCode/errorMsg`, `code/message`, then one level down.
pub fn parse_error_body(body: &[u8]) -> Option<(String, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    fn text(v: Option<&Value>) -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    fn shapes(obj: &serde_json::Map<String, Value>) -> Option<(String, String)> {
        for (code, msg) in [
            ("error_code", "error_msg"),
            ("errorCode", "errorMsg"),
            ("code", "message"),
        ] {
            if let Some(code) = text(obj.get(code)) {
                return Some((code, text(obj.get(msg)).unwrap_or_default()));
            }
        }
        None
    }
    let obj = value.as_object()?;
    shapes(obj).or_else(|| obj.values().filter_map(Value::as_object).find_map(shapes))
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
        assert_eq!(image.id, None);
    }

    #[test]
    fn registries_are_read_leniently_with_string_ids() {
        let page: ListRegistriesResponse = serde_json::from_str(
            r#"{"total_num": "2", "data_list": [
                {"id": "4f0c-1", "registry_name": "harbor-1", "registry_type": "Harbor",
                 "images_num": "12", "latest_sync_time": 1700000000000, "namespace": null,
                 "status": ["?"], "unknown": {"x": 1}},
                {"id": 7, "registry_name": "jfrog-1", "images_num": "many"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(page.total_num, Lenient::Value(2));
        let [harbor, jfrog] = &page.data_list[..] else {
            panic!("two registries")
        };
        assert_eq!(
            (harbor.id.as_str(), harbor.registry_name.as_str()),
            ("4f0c-1", "harbor-1")
        );
        assert_eq!(harbor.images_num, Some(12));
        assert_eq!(harbor.latest_sync_time, Some(1_700_000_000_000));
        assert_eq!(
            (harbor.namespace.as_str(), harbor.status.as_str()),
            ("", "")
        );
        assert_eq!(jfrog.id, "7", "a numeric id is kept as text");
        assert_eq!(jfrog.images_num, None);
        let empty: ListRegistriesResponse = serde_json::from_str(r#"{"data_list": null}"#).unwrap();
        assert!(empty.data_list.is_empty() && empty.total_num == Lenient::Missing);
    }

    #[test]
    fn error_bodies_in_every_sdk_shape() {
        type Case<'a> = (&'a [u8], Option<(&'a str, &'a str)>);
        let cases: [Case; 6] = [
            (
                br#"{"error_code":"APIGW.0301","error_msg":"bad sig"}"#,
                Some(("APIGW.0301", "bad sig")),
            ),
            (br#"{"errorCode":"X.1","errorMsg":"m"}"#, Some(("X.1", "m"))),
            (br#"{"code":"C","message":"m2"}"#, Some(("C", "m2"))),
            (
                br#"{"error":{"code":"N","message":"nested"}}"#,
                Some(("N", "nested")),
            ),
            (br#"{"error_code": 5}"#, Some(("5", ""))),
            (b"<html>", None),
        ];
        for (body, want) in cases {
            let got = parse_error_body(body);
            assert_eq!(
                got.as_ref().map(|(c, m)| (c.as_str(), m.as_str())),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
