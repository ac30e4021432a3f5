//! The jobs the daemon schedules and the CLI runs once, and how a run ends: one vocabulary for
//! the runner, the `job_runs` table and the metrics.

/// A job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// List every target into the inventory, then reconcile.
    Sync,
    /// Plan and submit.
    Scan,
}

impl Job {
    pub const ALL: [Job; 2] = [Job::Sync, Job::Scan];

    /// The name in `job_runs`, logs and the `job` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::Sync => "sync",
            Job::Scan => "scan",
        }
    }
}

/// How a job run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Success,
    Failure,
    /// A tick found the previous run of the job still going.
    Skipped,
}

impl JobOutcome {
    pub const ALL: [JobOutcome; 3] = [
        JobOutcome::Success,
        JobOutcome::Failure,
        JobOutcome::Skipped,
    ];

    /// The name in `job_runs.outcome` and the `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Success => "success",
            JobOutcome::Failure => "failure",
            JobOutcome::Skipped => "skipped",
        }
    }
}
