//! The simulated API operations, by the names tests, stats and scripted faults use.

use std::fmt;

/// One operation of the simulated API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /v5/{project_id}/image/swr-repository` (deprecated)
    ListSwrImages,
    /// `POST /v5/{project_id}/image/synchronize` (deprecated)
    Synchronize,
    /// `POST /v5/{project_id}/image/batch-scan` (deprecated)
    BatchScan,
    /// `POST /v5/{project_id}/image/registries`
    AddRegistry,
    /// `GET /v5/{project_id}/image/registries`
    ListRegistries,
    /// `GET /v5/{project_id}/image/registries/image-upload-command`
    UploadCommand,
    /// `GET /v5/{project_id}/image/registries/images`
    ListRegistryImages,
    /// `POST /v5/{project_id}/image/image-scan/tasks`
    CreateScanTask,
    /// `GET /v5/{project_id}/image/tasks`
    ListTasks,
    /// `PUT /v5/{project_id}/image/image-scan/tasks/{task_id}/stop`
    StopScanTask,
    /// `POST /v5/{project_id}/image/image-sync/tasks`
    CreateSyncTask,
    /// `GET /v5/{project_id}/image/image-sync/tasks/{task_id}/registries`
    ListSyncRegistries,
    /// `GET /v5/{project_id}/image/scanner-policies`
    ListScanPolicy,
    /// `PUT /v5/{project_id}/image/scanner-policies`
    ModifyScanPolicy,
    /// `GET /v5/{project_id}/image/pay-per-scan/statistics`
    PayPerScanStatistics,
    /// `GET /v5/{project_id}/setting/switches/{code}`
    ShowSwitch,
    /// `PUT /v5/{project_id}/setting/switches/{code}`
    ChangeSwitch,
}

impl Endpoint {
    pub const ALL: [Endpoint; 17] = [
        Endpoint::ListSwrImages,
        Endpoint::Synchronize,
        Endpoint::BatchScan,
        Endpoint::AddRegistry,
        Endpoint::ListRegistries,
        Endpoint::UploadCommand,
        Endpoint::ListRegistryImages,
        Endpoint::CreateScanTask,
        Endpoint::ListTasks,
        Endpoint::StopScanTask,
        Endpoint::CreateSyncTask,
        Endpoint::ListSyncRegistries,
        Endpoint::ListScanPolicy,
        Endpoint::ModifyScanPolicy,
        Endpoint::PayPerScanStatistics,
        Endpoint::ShowSwitch,
        Endpoint::ChangeSwitch,
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
            Endpoint::ListRegistryImages => "list_registry_images",
            Endpoint::CreateScanTask => "create_scan_task",
            Endpoint::ListTasks => "list_tasks",
            Endpoint::StopScanTask => "stop_scan_task",
            Endpoint::CreateSyncTask => "create_sync_task",
            Endpoint::ListSyncRegistries => "list_sync_registries",
            Endpoint::ListScanPolicy => "list_scan_policy",
            Endpoint::ModifyScanPolicy => "modify_scan_policy",
            Endpoint::PayPerScanStatistics => "pay_per_scan_statistics",
            Endpoint::ShowSwitch => "show_switch",
            Endpoint::ChangeSwitch => "change_switch",
        }
    }

    pub fn from_name(name: &str) -> Option<Endpoint> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The three calls HSS has deprecated (list SWR images, batch scan, synchronize).
    pub fn is_deprecated(self) -> bool {
        matches!(
            self,
            Endpoint::ListSwrImages | Endpoint::BatchScan | Endpoint::Synchronize
        )
    }

    /// The calls that replace them and came with them (SDK 3.1.165 and later): an older
    /// region does not have them.
    pub fn is_current(self) -> bool {
        !self.is_deprecated()
            && !matches!(
                self,
                Endpoint::AddRegistry | Endpoint::ListRegistries | Endpoint::UploadCommand
            )
    }

    /// The image list calls, deprecated and current.
    pub fn lists_images(self) -> bool {
        matches!(self, Endpoint::ListSwrImages | Endpoint::ListRegistryImages)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let names: std::collections::HashSet<&str> =
            Endpoint::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), Endpoint::ALL.len());
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
            assert!(!(e.is_deprecated() && e.is_current()));
        }
        assert!(Endpoint::CreateScanTask.is_current() && !Endpoint::AddRegistry.is_current());
    }
}
