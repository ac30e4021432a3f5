//! `api = "auto"`: the current APIs, unless the target's region does not have them. The first
//! call a target makes (a listing, a submission, a question about the project) first asks the
//! current list endpoint for one image; only the gateway's answer for an API that does not
//! exist (HTTP 404 `APIGW.0101`, which no request reaching HSS gets) makes the target use the
//! deprecated APIs, for the life of the process. Any other failure decides nothing and is
//! asked again at the next call. The fall-back is logged once and counted.

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::current::CurrentApi;
use super::legacy::LegacyApi;
use super::{
    AccountFacts, ApiInUse, ImagePage, ImageSource, PageRequest, Receipt, ScanSubmitter, SendGate,
    SourceError, SubmitError, classify,
};
use crate::domain::{ImageIdentity, ImageType, NativeScanPolicy, PayPerScan, ScanTask};

/// One target, through whichever API generation its region has.
#[derive(Debug)]
pub struct AutoApi {
    target: String,
    current: CurrentApi,
    legacy: LegacyApi,
    decided: OnceCell<ApiInUse>,
}

impl AutoApi {
    pub fn new(target: &str, current: CurrentApi, legacy: LegacyApi) -> Self {
        AutoApi {
            target: target.to_owned(),
            current,
            legacy,
            decided: OnceCell::new(),
        }
    }

    /// Which API this target uses, asking HSS the first time.
    async fn decide(&self) -> Result<ApiInUse, super::transport::error::HssError> {
        self.decided
            .get_or_try_init(|| async {
                match self
                    .current
                    .list_registry_images(&ImageType::Private, 0, 1)
                    .await
                {
                    Ok(_) => Ok(ApiInUse::Current),
                    Err(err) if err.is_api_missing() => {
                        tracing::warn!(
                            hss_target = %self.target,
                            error = %err,
                            "HSS's current image API does not exist in this target's region; \
                             using the deprecated SWR API (hss.api = \"auto\")"
                        );
                        self.legacy.observer().fell_back(&self.target);
                        Ok(ApiInUse::LegacyFallback)
                    }
                    Err(err) => Err(err),
                }
            })
            .await
            .copied()
    }

    /// The adapter decided on, as each port.
    async fn source(&self) -> Result<&dyn ImageSource, SourceError> {
        Ok(match self.decide().await? {
            ApiInUse::LegacyFallback | ApiInUse::Legacy => &self.legacy,
            ApiInUse::Current | ApiInUse::Undecided => &self.current,
        })
    }

    async fn submitter(&self) -> Result<&dyn ScanSubmitter, SubmitError> {
        let decided = self.decide().await.map_err(|err| classify(&err, false))?;
        Ok(match decided {
            ApiInUse::LegacyFallback | ApiInUse::Legacy => &self.legacy,
            ApiInUse::Current | ApiInUse::Undecided => &self.current,
        })
    }
}

#[async_trait]
impl ImageSource for AutoApi {
    fn max_offset(&self) -> u32 {
        // Both generations document the same limit.
        self.current.max_offset().min(self.legacy.max_offset())
    }

    async fn refresh(&self, image_type: &ImageType) -> Result<(), SourceError> {
        self.source().await?.refresh(image_type).await
    }

    async fn page(&self, request: &PageRequest) -> Result<ImagePage, SourceError> {
        self.source().await?.page(request).await
    }

    fn lists_changes(&self) -> bool {
        // Before the first call decides, nothing is promised: that first sync of the
        // process is a full listing anyway.
        self.decided.get() == Some(&ApiInUse::Current)
    }
}

#[async_trait]
impl ScanSubmitter for AutoApi {
    fn max_batch(&self) -> usize {
        match self.decided.get() {
            Some(ApiInUse::LegacyFallback) => self.legacy.max_batch(),
            _ => self.current.max_batch(),
        }
    }

    fn api_in_use(&self) -> ApiInUse {
        self.decided.get().copied().unwrap_or(ApiInUse::Undecided)
    }

    async fn preflight(&self) -> Result<(), SubmitError> {
        self.submitter().await?.preflight().await
    }

    async fn submit(
        &self,
        image_type: &ImageType,
        images: &[&ImageIdentity],
        gate: &dyn SendGate,
    ) -> Result<Receipt, SubmitError> {
        self.submitter()
            .await?
            .submit(image_type, images, gate)
            .await
    }

    async fn task(&self, task_id: &str) -> Result<Option<ScanTask>, SourceError> {
        // Tasks exist only on the current API; a fallen-back target has none to follow.
        match self.decide().await? {
            ApiInUse::Current => self.current.task(task_id).await,
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl AccountFacts for AutoApi {
    async fn native_policy(&self) -> Result<Option<NativeScanPolicy>, SourceError> {
        match self.decide().await? {
            ApiInUse::Current => self.current.native_policy().await,
            _ => Ok(None),
        }
    }

    async fn pay_per_scan(&self) -> Result<Option<PayPerScan>, SourceError> {
        match self.decide().await? {
            ApiInUse::Current => self.current.pay_per_scan().await,
            _ => Ok(None),
        }
    }
}
