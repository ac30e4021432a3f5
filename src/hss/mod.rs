//! Everything about talking to HSS, nothing about policy.
//!
//! The pipeline sees HSS through two ports, defined here: an [`ImageSource`] that lists the
//! images of one type a page at a time (and can ask HSS to refresh its copy of the registry),
//! and a [`ScanSubmitter`] that submits a batch of images and answers with a failure already
//! classified ([`SubmitError`]). Each API generation is one adapter folder implementing both:
//! [`legacy`] holds the deprecated SWR endpoints. Nothing outside `hss/` builds a request body
//! or reads an HSS error code, and an API's limits (field lengths, images per call) are
//! properties of its adapter.
//!
//! [`transport`] is what every adapter shares (signing, credentials, retries, the rate
//! limit, lenient JSON); [`registries`] holds the third-party registry calls of
//! `hss-scand registry`.

pub mod legacy;
pub mod registries;
pub mod transport;

use std::fmt;

use async_trait::async_trait;

use crate::domain::{BatchFailure, Image, ImageIdentity, ImageType};

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
}

/// A listing call that failed; the sync records why and moves on.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SourceError(#[from] transport::error::HssError);

/// Lists a target's images.
#[async_trait]
pub trait ImageSource: Send + Sync + fmt::Debug {
    /// Asks HSS to refresh its copy of the registry's image list for `image_type` before it
    /// is listed (`trigger_swr_sync`).
    async fn refresh(&self, image_type: &ImageType) -> Result<(), SourceError>;

    /// One page of the images of one type.
    async fn page(&self, request: &PageRequest) -> Result<ImagePage, SourceError>;
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

/// Submits images for scanning.
#[async_trait]
pub trait ScanSubmitter: Send + Sync + fmt::Debug {
    /// The most images one call may carry.
    fn max_batch(&self) -> usize;

    /// Submits `images`, all of `image_type`, in one call.
    async fn submit(
        &self,
        image_type: &ImageType,
        images: &[ImageIdentity],
    ) -> Result<(), SubmitError>;
}

/// Every HSS call hss-scand can make, as the `endpoint` label of the API metrics names it.
pub fn calls() -> impl Iterator<Item = &'static str> {
    legacy::CALLS.into_iter().chain(registries::CALLS)
}
