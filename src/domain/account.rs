//! What an HSS project says about itself, beside its images: its own periodic scan policy,
//! what it says it billed, and the scan tasks it made of our submissions. Read through the
//! current API; stored as the last sync saw them, for `status` and the metrics.

use serde::{Deserialize, Serialize};

/// HSS's own periodic image scan (`GET /image/scanner-policies?type=cycle`). When it is on,
/// the images in its scope are scanned, and billed, by it as well as by hss-scand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeScanPolicy {
    pub enabled: bool,
    /// Days between its scans: 3, 7 or 14.
    pub scan_cycle_days: Option<i64>,
    /// Only images updated within this many days; 0: all.
    pub time_scope_days: Option<i64>,
    /// `true`: every registry; else the selected ones below.
    pub all_registries: bool,
    pub rate_limit: Option<i64>,
    /// The registries it covers (those marked selected).
    pub registries: Vec<String>,
}

impl NativeScanPolicy {
    /// What an operator must know, in one line: the cycle, the scope, the registries.
    pub fn describe(&self) -> String {
        let cycle = self.scan_cycle_days.map_or_else(
            || "an unknown cycle".to_owned(),
            |d| format!("every {d} days"),
        );
        let scope = match self.time_scope_days {
            Some(days) if days > 0 => format!("images updated in the last {days} days"),
            _ => "all images".to_owned(),
        };
        let registries = if self.all_registries {
            "all registries".to_owned()
        } else if self.registries.is_empty() {
            "no registry selected".to_owned()
        } else {
            format!("registries {}", self.registries.join(", "))
        };
        format!("{cycle}, {scope}, {registries}")
    }
}

/// What HSS says about pay-per-scan billing of image scans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayPerScan {
    /// The `image_pay_per_scan` switch; `None` when HSS did not say.
    pub enabled: Option<bool>,
    /// Successful registry-image scans HSS counted (the period is not documented).
    pub repository_scans: Option<i64>,
    pub cicd_scans: Option<i64>,
    pub free_quota: Option<i64>,
    /// Registry images HSS knows, and how many of them it has never scanned.
    pub registry_images: Option<i64>,
    pub registry_images_unscanned: Option<i64>,
}

/// A scan task as HSS's task list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanTask {
    pub task_id: String,
    /// 0..=100 progress (100 done); -1 stopped, -2 timed out, -3 error.
    pub progress: i64,
    pub total: Option<i64>,
    pub succeeded: Option<i64>,
    pub failed: Option<i64>,
    /// The images HSS reports failed, by its record id, with why.
    pub failed_images: Vec<(Option<i64>, String)>,
}

/// How a scan task ended, as the `outcome` label counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    Finished,
    Stopped,
    TimedOut,
    Error,
}

impl TaskOutcome {
    pub const ALL: [TaskOutcome; 4] = [
        TaskOutcome::Finished,
        TaskOutcome::Stopped,
        TaskOutcome::TimedOut,
        TaskOutcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskOutcome::Finished => "finished",
            TaskOutcome::Stopped => "stopped",
            TaskOutcome::TimedOut => "timed_out",
            TaskOutcome::Error => "error",
        }
    }
}

impl ScanTask {
    /// How it ended; `None` while it runs.
    pub fn outcome(&self) -> Option<TaskOutcome> {
        match self.progress {
            100 => Some(TaskOutcome::Finished),
            -1 => Some(TaskOutcome::Stopped),
            -2 => Some(TaskOutcome::TimedOut),
            p if p < 0 => Some(TaskOutcome::Error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_ends_at_100_or_below_0() {
        let task = |progress| ScanTask {
            task_id: "t".into(),
            progress,
            total: None,
            succeeded: None,
            failed: None,
            failed_images: Vec::new(),
        };
        assert_eq!(task(0).outcome(), None);
        assert_eq!(task(99).outcome(), None);
        assert_eq!(task(100).outcome(), Some(TaskOutcome::Finished));
        assert_eq!(task(-1).outcome(), Some(TaskOutcome::Stopped));
        assert_eq!(task(-2).outcome(), Some(TaskOutcome::TimedOut));
        assert_eq!(task(-3).outcome(), Some(TaskOutcome::Error));
        assert_eq!(task(-7).outcome(), Some(TaskOutcome::Error));
    }

    #[test]
    fn a_native_policy_describes_itself_in_one_line() {
        let policy = NativeScanPolicy {
            enabled: true,
            scan_cycle_days: Some(7),
            time_scope_days: Some(0),
            all_registries: false,
            rate_limit: Some(0),
            registries: vec!["harbor-prod".into(), "jfrog-eu".into()],
        };
        assert_eq!(
            policy.describe(),
            "every 7 days, all images, registries harbor-prod, jfrog-eu"
        );
    }
}
