//! The words of the product, defined once: what an image is, its scan status and type, why it
//! is due, which account it belongs to, and the plan's view of it. The HSS adapters convert
//! their wire models into these at the boundary; the store, the policy, the pipeline and the
//! metrics speak only these.
//!
//! Four different identifiers meet here, and each has its own name:
//! - `hss_record_id`: HSS's id of one listing record (one image version), int64 on the wire;
//! - `hss_image_id`: HSS's id text of the image content;
//! - `row_id`: the store's row of an image in the inventory;
//! - `image_row_id`: that same row, as a submission item refers to it.

pub mod account;
pub mod clock;
mod due;
mod image;
pub mod job;
mod open_enum;
pub mod shutdown;

use serde::{Deserialize, Serialize};

pub use account::{NativeScanPolicy, PayPerScan, ScanTask, TaskOutcome};
pub use clock::Clock;
pub use due::{BatchFailure, Candidate, Due, DueReason, MAX_RULES, PlanGroup, Planned};
pub use image::{Image, ImageIdentity, ImageType, ScanStatus, Severity, Unsubmittable};
pub use job::{Job, JobOutcome};
pub use shutdown::Shutdown;

/// Which generation of HSS's image APIs a target is reached through (`hss.api`, or a
/// target's own `api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiChoice {
    /// The current APIs, falling back to the deprecated ones for a target whose region
    /// answers that the current list API does not exist.
    Auto,
    /// Only the current APIs (`/image/registries/images`, `/image/image-scan/tasks`).
    Current,
    /// Only the deprecated SWR APIs (`/image/swr-repository`, `/image/batch-scan`).
    Legacy,
}

impl ApiChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiChoice::Auto => "auto",
            ApiChoice::Current => "current",
            ApiChoice::Legacy => "legacy",
        }
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
    /// Ask HSS to refresh its copy of the registry for each image type before listing it.
    pub trigger_swr_sync: bool,
    /// This target's own choice of API; `None`: `hss.api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiChoice>,
}
