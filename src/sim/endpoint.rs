//! The simulated API operations, by the names tests, stats and scripted faults use.

use std::fmt;

/// One operation of the simulated API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /v5/{project_id}/image/swr-repository`
    ListSwrImages,
    /// `POST /v5/{project_id}/image/synchronize`
    Synchronize,
    /// `POST /v5/{project_id}/image/batch-scan`
    BatchScan,
    /// `POST /v5/{project_id}/image/registries`
    AddRegistry,
    /// `GET /v5/{project_id}/image/registries`
    ListRegistries,
    /// `GET /v5/{project_id}/image/registries/image-upload-command`
    UploadCommand,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::ListSwrImages,
        Endpoint::Synchronize,
        Endpoint::BatchScan,
        Endpoint::AddRegistry,
        Endpoint::ListRegistries,
        Endpoint::UploadCommand,
    ];

    /// The name used in [`SimStats::requests`](super::SimStats) and [`ScriptedFault::endpoint`](super::ScriptedFault).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::ListSwrImages => "list_swr_images",
            Endpoint::Synchronize => "synchronize",
            Endpoint::BatchScan => "batch_scan",
            Endpoint::AddRegistry => "add_registry",
            Endpoint::ListRegistries => "list_registries",
            Endpoint::UploadCommand => "upload_command",
        }
    }

    pub fn from_name(name: &str) -> Option<Endpoint> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
