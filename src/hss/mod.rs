//! Everything about talking to HSS, nothing about policy.
//!
//! The pipeline sees HSS through two ports, defined here: an [`ImageSource`] that lists the
//! images of one type a page at a time (and can ask HSS to refresh its copy of the registry),
//! and a [`ScanSubmitter`] that submits a batch of images and answers with a failure already
//! classified ([`SubmitError`]); a third, [`AccountFacts`], reads what the project says about
//! itself. Each API generation is one adapter folder implementing them: [`legacy`] holds the
//! deprecated SWR endpoints, [`current`] the registry-image and scan-task endpoints that
//! replace them (and also cover Harbor and JFrog images), and [`auto`] picks between the two
//! per target. Nothing outside `hss/` builds a request body or reads an HSS error code, and
//! an API's limits (field lengths, images per call) are properties of its adapter.
//!
//! [`transport`] is what every adapter shares (signing, credentials, retries, the rate
//! limit, lenient JSON); [`registries`] holds the third-party registry calls of
//! `hss-scand registry`.

pub mod auto;
pub mod current;
pub mod legacy;
pub mod registries;
pub mod transport;

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::{
    BatchFailure, Image, ImageIdentity, ImageType, NativeScanPolicy, PayPerScan, ScanTask,
};
use transport::error::HssError;

// The simulator verifies signatures with the same signer; keep its path short.
pub use transport::signer;

/// One page of a listing, in the domain's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePage {
    /// `total_num` as HSS reported it for this page; `None` when absent or unreadable, which a
    /// sync must treat as "cannot prove the listing complete".
    pub total_num: Option<i64>,
    pub images: Vec<Image>,
    /// Fields present on the wire that could not be read (left empty instead).
    pub unreadable_fields: u32,
}

/// Which page of which image type to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub image_type: ImageType,
    pub offset: u32,
    pub limit: u32,
    /// Only the images whose time lies in this window (an incremental listing); `None`:
    /// every image. Only a source that [`ImageSource::lists_changes`] takes one.
    pub window: Option<ChangeWindow>,
}

/// Which of an image's times a [`ChangeWindow`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeTime {
    /// `latest_update_time`: the tag was pushed (or pushed again).
    Update,
    /// `latest_sync_time`: a sync of HSS with the registry brought or changed the record.
    Sync,
    /// `latest_scan_time`: a scan completed.
    Scan,
}

impl ChangeTime {
    /// Every time an incremental listing asks about, in the order it asks.
    pub const ALL: [ChangeTime; 3] = [ChangeTime::Update, ChangeTime::Sync, ChangeTime::Scan];

    /// The field's name on the wire and in reports.
    pub fn field(self) -> &'static str {
        match self {
            ChangeTime::Update => "latest_update_time",
            ChangeTime::Sync => "latest_sync_time",
            ChangeTime::Scan => "latest_scan_time",
        }
    }

    /// This time of `image`, if it has one.
    pub fn of(self, image: &Image) -> Option<i64> {
        match self {
            ChangeTime::Update => image.latest_update_time,
            ChangeTime::Sync => image.latest_sync_time,
            ChangeTime::Scan => image.latest_scan_time,
        }
    }
}

/// The images whose `time` lies in `start..=end`, epoch ms, both bounds given: a fixed end
/// keeps the set still while it is paged through, whatever changes meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChangeWindow {
    pub time: ChangeTime,
    pub start: i64,
    pub end: i64,
}

/// A listing (or reading) call that failed; the caller records why and moves on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Hss(#[from] HssError),
    /// The API this target is reached through cannot do what was asked (list Harbor images
    /// through the deprecated API, say).
    #[error("{0}")]
    Unsupported(String),
}

/// Which API a target's calls go through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiInUse {
    /// The current registry-image and scan-task APIs.
    Current,
    /// The deprecated SWR APIs, as configured.
    Legacy,
    /// The deprecated SWR APIs, because `auto` found that the region has no current ones.
    LegacyFallback,
    /// `auto`, before the first call told which.
    Undecided,
}

impl ApiInUse {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiInUse::Current => "current",
            ApiInUse::Legacy => "legacy",
            ApiInUse::LegacyFallback => "legacy_fallback",
            ApiInUse::Undecided => "undecided",
        }
    }

    /// The API generation, as a batch records it.
    pub fn generation(self) -> &'static str {
        match self {
            ApiInUse::Current | ApiInUse::Undecided => "current",
            ApiInUse::Legacy | ApiInUse::LegacyFallback => "legacy",
        }
    }
}

/// Lists a target's images.
#[async_trait]
pub trait ImageSource: Send + Sync + fmt::Debug {
    /// The largest `offset` the list call takes: no listing pages beyond it, whatever
    /// `total_num` claims.
    fn max_offset(&self) -> u32;

    /// Asks HSS to refresh its copy of the registry's image list for `image_type` before it
    /// is listed (`trigger_swr_sync`).
    async fn refresh(&self, image_type: &ImageType) -> Result<(), SourceError>;

    /// One page of the images of one type.
    async fn page(&self, request: &PageRequest) -> Result<ImagePage, SourceError>;

    /// Whether [`ImageSource::page`] takes a [`ChangeWindow`] now, so that a sync can read
    /// only what changed. The deprecated API has no such filters: it never does.
    fn lists_changes(&self) -> bool {
        false
    }
}

/// Asked right before each attempt of a billed call goes on the wire (after the rate limit's
/// wait, which can be long): whether it may still go. The pipeline's gate checks that this
/// process still holds the leader lease, so a process paused between recording a batch and
/// sending it does not send it after another took over. `Err` says why not.
#[async_trait]
pub trait SendGate: Send + Sync {
    async fn may_send(&self) -> Result<(), String>;
}

/// A gate that is always open: for calls made outside a scan (tools, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ungated;

#[async_trait]
impl SendGate for Ungated {
    async fn may_send(&self) -> Result<(), String> {
        Ok(())
    }
}

/// How a scan call failed, classified by the adapter that made it, so that the pipeline
/// decides what to do next without knowing any error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    /// HSS certainly did not take the batch; its images are due again. Others may go on.
    Refused(BatchFailure),
    /// The answer does not tell whether HSS took the batch (a timeout, a 5xx after the body
    /// was sent): it must not be sent again blindly.
    OutcomeUnknown(BatchFailure),
    /// HSS refused the batch as too large; smaller batches may pass.
    TooLarge(BatchFailure),
    /// HSS did not take the batch, for a reason that is not this batch's fault (throttled,
    /// credentials refused, no connection): the next batches would fail the same way.
    StopRun(BatchFailure),
}

impl SubmitError {
    /// What to record of the failure.
    pub fn failure(&self) -> &BatchFailure {
        match self {
            SubmitError::Refused(f)
            | SubmitError::OutcomeUnknown(f)
            | SubmitError::TooLarge(f)
            | SubmitError::StopRun(f) => f,
        }
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.failure().message)
    }
}

impl std::error::Error for SubmitError {}

/// What HSS gave back for an accepted batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The scan task HSS made of it, when the API makes tasks and it was found.
    pub task_id: Option<String>,
}

/// Submits images for scanning.
#[async_trait]
pub trait ScanSubmitter: Send + Sync + fmt::Debug {
    /// The most images one call may carry.
    fn max_batch(&self) -> usize;

    /// The API the next call goes through.
    fn api_in_use(&self) -> ApiInUse;

    /// Whether scans can be submitted at all now (once per scan, before the first batch).
    /// An error says why not and stops the target's submissions.
    async fn preflight(&self) -> Result<(), SubmitError> {
        Ok(())
    }

    /// Submits `images`, all of `image_type`, in one call, which `gate` may still stop right
    /// before each attempt goes on the wire.
    async fn submit(
        &self,
        image_type: &ImageType,
        images: &[&ImageIdentity],
        gate: &dyn SendGate,
    ) -> Result<Receipt, SubmitError>;

    /// The scan task `task_id` as HSS shows it now; `None` when the API has no tasks or no
    /// longer lists this one.
    async fn task(&self, _task_id: &str) -> Result<Option<ScanTask>, SourceError> {
        Ok(None)
    }
}

/// What a target's HSS project says about itself.
#[async_trait]
pub trait AccountFacts: Send + Sync + fmt::Debug {
    /// HSS's own periodic scan policy; `None` when the API in use cannot tell.
    async fn native_policy(&self) -> Result<Option<NativeScanPolicy>, SourceError>;

    /// HSS's pay-per-scan switch and counts; `None` when the API in use cannot tell.
    async fn pay_per_scan(&self) -> Result<Option<PayPerScan>, SourceError>;
}

/// Every HSS call hss-scand can make, as the `endpoint` label of the API metrics names it.
pub fn calls() -> impl Iterator<Item = &'static str> {
    legacy::CALLS
        .into_iter()
        .chain(current::CALLS)
        .chain(registries::CALLS)
}

/// What a failed scan call means for the run, the same for every adapter: a timeout, a
/// broken connection or a 5xx after the body was sent leaves the outcome unknown;
/// throttling that outlasted the retries, refused credentials and no connection stop the run
/// (the next batch would fail the same way); `too_large` (as the adapter reads its API's
/// answer) asks for smaller batches; anything else refused this batch only.
fn classify(err: &HssError, too_large: bool) -> SubmitError {
    let api = err.api();
    let failure = BatchFailure {
        http_status: api.map(|a| a.status),
        error_code: api.map(|a| a.error_code.clone()),
        request_id: api.and_then(|a| a.request_id.clone()),
        message: err.to_string(),
    };
    // HSS.0010 (access denied) and HSS.0013 (insufficient permissions) are answered with
    // HTTP 400 like a bad request, but say nothing about the batch either.
    let stops_the_run = match err {
        HssError::Api(api) => {
            api.is_throttling()
                || matches!(api.status, 401 | 403)
                || matches!(api.error_code.as_str(), "HSS.0010" | "HSS.0013")
        }
        HssError::Connect { .. } | HssError::Credentials(_) | HssError::NotSent { .. } => true,
        _ => false,
    };
    if too_large {
        SubmitError::TooLarge(failure)
    } else if err.outcome_unknown() {
        SubmitError::OutcomeUnknown(failure)
    } else if stops_the_run {
        SubmitError::StopRun(failure)
    } else {
        SubmitError::Refused(failure)
    }
}
