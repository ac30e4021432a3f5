//! The adapter on HSS's deprecated SWR endpoints: `GET /image/swr-repository` lists,
//! `POST /image/batch-scan` submits (at most 10,241 images a call, with field-length limits),
//! `POST /image/synchronize` asks HSS to re-read SWR.

pub mod model;

use async_trait::async_trait;
use reqwest::Method;

use self::model::{
    BatchScanItem, BatchScanRequest, ListSwrImages, ListSwrImagesResponse, SynchronizeRequest,
    SynchronizeResponse,
};
use super::transport::client::{ApiRequest, HssClient, to_body};
use super::transport::error::HssError;
use super::{
    AccountFacts, ApiInUse, ImagePage, ImageSource, PageRequest, Receipt, ScanSubmitter, SendGate,
    SourceError, SubmitError, Ungated, classify,
};
use crate::domain::{ImageIdentity, ImageType, NativeScanPolicy, PayPerScan};

/// The calls of this adapter, as metrics name them.
pub const CALLS: [&str; 3] = ["list_swr_images", "synchronize", "batch_scan"];

/// The limits of the deprecated endpoints (`BatchScanSwrImageInfo` and the list call in the
/// seed pages). Longer names can be listed but never submitted.
pub mod limits {
    use crate::domain::{Image, Unsubmittable};

    pub const NAMESPACE: usize = 64;
    pub const IMAGE_NAME: usize = 128;
    pub const IMAGE_VERSION: usize = 128;
    pub const INSTANCE_ID: usize = 128;
    pub const INSTANCE_URL: usize = 256;
    /// Items in one `image_info_list` (`Array Length: 0 - 10241`).
    pub const BATCH_ITEMS: usize = 10241;
    /// `limit` of the image list call.
    pub const PAGE_SIZE: u32 = 200;
    /// `offset` of the image list call, 0..=2,000,000 (the English API page of 2024-05-13).
    pub const MAX_OFFSET: u32 = 2_000_000;

    /// Whether batch-scan can take `image` as listed: namespace, name and tag present and
    /// within their lengths, enterprise fields within theirs. Lengths are in characters, as
    /// the API counts them.
    pub fn unsubmittable(image: &Image) -> Option<Unsubmittable> {
        let within = |text: &str, min: usize, max: usize| {
            let n = text.chars().count();
            n >= min && n <= max
        };
        let fits = within(&image.namespace, 1, NAMESPACE)
            && within(&image.image_name, 1, IMAGE_NAME)
            && within(&image.image_version, 1, IMAGE_VERSION)
            && within(&image.instance_id, 0, INSTANCE_ID)
            && within(&image.instance_url, 0, INSTANCE_URL);
        (!fits).then_some(Unsubmittable::FieldTooLong)
    }
}

/// One target's HSS project, through the deprecated endpoints. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LegacyApi {
    client: HssClient,
}

impl LegacyApi {
    pub fn new(client: HssClient) -> Self {
        LegacyApi { client }
    }

    /// Who learns of this adapter's calls.
    pub fn observer(&self) -> &std::sync::Arc<dyn super::transport::client::ApiObserver> {
        self.client.observer()
    }

    /// `GET /image/swr-repository`: one page of the image list.
    pub async fn list_swr_images(&self, query: &ListSwrImages) -> Result<ImagePage, HssError> {
        let mut query = query.clone();
        if query.enterprise_project_id.is_empty() {
            query
                .enterprise_project_id
                .clone_from(&self.client.options().enterprise_project_id);
        }
        let req = ApiRequest {
            call: "list_swr_images",
            method: Method::GET,
            path: "image/swr-repository".to_owned(),
            query: query.query(),
            body: None,
            region: self.client.region(),
            secrets: Vec::new(),
        };
        let wire: ListSwrImagesResponse = self.client.call_json(&req).await?;
        Ok(wire.into_page(&query.image_type))
    }

    /// `POST /image/synchronize`: ask HSS to refresh its copy of the SWR image list. Its
    /// failures come back as HTTP 200 with a non-zero `error_code`, mapped to an error here.
    pub async fn synchronize(&self, image_type: &ImageType) -> Result<(), HssError> {
        let body = SynchronizeRequest {
            image_type: image_type.clone(),
        };
        let req = ApiRequest {
            call: "synchronize",
            method: Method::POST,
            path: "image/synchronize".to_owned(),
            query: self.client.with_project_scope(Vec::new()),
            body: Some(to_body("synchronize", &body)?),
            region: self.client.region(),
            secrets: Vec::new(),
        };
        let (answer, request_id): (SynchronizeResponse, _) =
            self.client.call_json_with_id(&req).await?;
        match answer.error_code.value() {
            Some(0) => Ok(()),
            Some(code) => Err(HssError::FailedInBody {
                call: req.call,
                error_code: code,
                description: answer.error_description.value,
                request_id,
            }),
            None => Err(HssError::Malformed {
                call: req.call,
                status: 200,
                request_id,
                detail: "the answer has no readable error_code".to_owned(),
                retryable: false,
            }),
        }
    }

    /// `POST /image/batch-scan`: submit up to 10241 images of one type for scanning.
    pub async fn batch_scan(&self, body: &BatchScanRequest<'_>) -> Result<(), HssError> {
        self.batch_scan_gated(body, &Ungated).await
    }

    /// [`LegacyApi::batch_scan`], sent only while `gate` allows.
    pub async fn batch_scan_gated(
        &self,
        body: &BatchScanRequest<'_>,
        gate: &dyn SendGate,
    ) -> Result<(), HssError> {
        let req = ApiRequest {
            call: "batch_scan",
            method: Method::POST,
            path: "image/batch-scan".to_owned(),
            query: self.client.with_project_scope(Vec::new()),
            body: Some(to_body("batch_scan", body)?),
            region: self.client.region(),
            secrets: Vec::new(),
        };
        self.client.call_gated(&req, gate).await.map(drop)
    }
}

#[async_trait]
impl ImageSource for LegacyApi {
    fn max_offset(&self) -> u32 {
        limits::MAX_OFFSET
    }

    async fn refresh(&self, image_type: &ImageType) -> Result<(), SourceError> {
        Ok(self.synchronize(image_type).await?)
    }

    async fn page(&self, request: &PageRequest) -> Result<ImagePage, SourceError> {
        if request.image_type.is_third_party() {
            return Err(SourceError::Unsupported(format!(
                "{} images are listed only by HSS's current API, not the deprecated one in use",
                request.image_type
            )));
        }
        if request.window.is_some() {
            return Err(SourceError::Unsupported(
                "the deprecated list API has no time filters: it lists every image".to_owned(),
            ));
        }
        let query = ListSwrImages {
            image_type: request.image_type.clone(),
            offset: request.offset,
            limit: request.limit,
            enterprise_project_id: String::new(),
            latest_version: None,
            scan_status: None,
        };
        Ok(self.list_swr_images(&query).await?)
    }
}

#[async_trait]
impl ScanSubmitter for LegacyApi {
    fn max_batch(&self) -> usize {
        limits::BATCH_ITEMS
    }

    fn api_in_use(&self) -> ApiInUse {
        ApiInUse::Legacy
    }

    async fn submit(
        &self,
        image_type: &ImageType,
        images: &[&ImageIdentity],
        gate: &dyn SendGate,
    ) -> Result<Receipt, SubmitError> {
        let body = BatchScanRequest {
            image_info_list: images.iter().map(|i| BatchScanItem::for_image(i)).collect(),
            operate_all: false,
            image_type: image_type.clone(),
        };
        match self.batch_scan_gated(&body, gate).await {
            Ok(()) => Ok(Receipt::default()),
            // HSS.0006: over the 10,241 items.
            Err(err) => Err(classify(&err, err.is_request_too_large())),
        }
    }
}

/// The deprecated endpoints say nothing about the project: its native policy and billing
/// are read only through the current API.
#[async_trait]
impl AccountFacts for LegacyApi {
    async fn native_policy(&self) -> Result<Option<NativeScanPolicy>, SourceError> {
        Ok(None)
    }

    async fn pay_per_scan(&self) -> Result<Option<PayPerScan>, SourceError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Image, Unsubmittable};

    fn image() -> Image {
        Image::example("app")
    }

    /// The only check of batch-scan's length limits on the way to a submission: it must count
    /// characters, not bytes, and refuse empty names, exactly at the limits.
    #[test]
    fn batch_scan_takes_fields_up_to_their_limits_in_characters() {
        let at = |n: usize, c: &str| c.repeat(n);
        type Change = Box<dyn Fn(&mut Image)>;
        let cases: Vec<(&str, Change, bool)> = vec![
            ("plain", Box::new(|_| {}), true),
            (
                "namespace at 64 two-byte characters",
                Box::new(move |i| i.namespace = at(limits::NAMESPACE, "é")),
                true,
            ),
            (
                "namespace at 65",
                Box::new(move |i| i.namespace = at(limits::NAMESPACE + 1, "n")),
                false,
            ),
            ("empty namespace", Box::new(|i| i.namespace.clear()), false),
            (
                "name at 128",
                Box::new(move |i| i.image_name = at(limits::IMAGE_NAME, "a")),
                true,
            ),
            (
                "name at 129",
                Box::new(move |i| i.image_name = at(limits::IMAGE_NAME + 1, "a")),
                false,
            ),
            ("empty name", Box::new(|i| i.image_name.clear()), false),
            (
                "tag at 129",
                Box::new(move |i| i.image_version = at(limits::IMAGE_VERSION + 1, "v")),
                false,
            ),
            ("empty tag", Box::new(|i| i.image_version.clear()), false),
            (
                "instance id at 128",
                Box::new(move |i| i.instance_id = at(limits::INSTANCE_ID, "x")),
                true,
            ),
            (
                "instance id at 129",
                Box::new(move |i| i.instance_id = at(limits::INSTANCE_ID + 1, "x")),
                false,
            ),
            (
                "instance url at 256",
                Box::new(move |i| i.instance_url = at(limits::INSTANCE_URL, "u")),
                true,
            ),
            (
                "instance url at 257",
                Box::new(move |i| i.instance_url = at(limits::INSTANCE_URL + 1, "u")),
                false,
            ),
        ];
        for (name, change, fits) in cases {
            let mut i = image();
            change(&mut i);
            let want = (!fits).then_some(Unsubmittable::FieldTooLong);
            assert_eq!(limits::unsubmittable(&i), want, "{name}");
        }
    }

    #[test]
    fn failures_are_classified_for_the_pipeline() {
        use crate::hss::transport::error::ApiError;
        let api = |status: u16, code: &str| {
            HssError::Api(Box::new(ApiError {
                call: "batch_scan",
                status,
                error_code: code.into(),
                error_msg: String::new(),
                request_id: Some("rid".into()),
                retry_after: None,
                retryable: false,
            }))
        };
        let classify = |err: &HssError| classify(err, err.is_request_too_large());
        let too_large = classify(&api(400, "HSS.0006"));
        assert!(matches!(too_large, SubmitError::TooLarge(_)));
        assert_eq!(too_large.failure().request_id.as_deref(), Some("rid"));
        assert!(matches!(
            classify(&api(503, "HSS.0503")),
            SubmitError::OutcomeUnknown(_)
        ));
        assert!(matches!(
            classify(&api(429, "APIG.0308")),
            SubmitError::StopRun(_)
        ));
        assert!(matches!(
            classify(&api(403, "APIGW.0302")),
            SubmitError::StopRun(_)
        ));
        let refused = classify(&api(400, "HSS.0001"));
        assert!(matches!(refused, SubmitError::Refused(_)));
        assert_eq!(refused.failure().http_status, Some(400));
        assert!(matches!(
            classify(&HssError::Timeout {
                call: "batch_scan",
                after: std::time::Duration::from_secs(1),
                retryable: false,
            }),
            SubmitError::OutcomeUnknown(_)
        ));
    }
}
