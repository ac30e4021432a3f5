//! Counters tests assert on: what the simulator was asked, and what it answered.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::lock;

/// A snapshot of the simulator's counters (`GET /sim/stats`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct SimStats {
    /// API requests by endpoint name (`list_swr_images`, `batch_scan`, …; `unknown` for
    /// paths that match no API).
    pub requests: BTreeMap<String, u64>,
    /// API responses by HTTP status.
    pub responses: BTreeMap<u16, u64>,
    pub auth_failures: u64,
    /// 429 answers, random or scripted.
    pub throttled: u64,
    /// Other injected error answers (5xx, scripted statuses, hangs, in-body sync errors).
    pub injected_errors: u64,
    pub malformed: u64,
    /// Answers bent by a page fault (ignored offset, duplicate, missing fields, wrong type,
    /// huge total), trickled out slowly, or whose scan task was set to time out or fail.
    pub hostile_answers: u64,
    /// Image list pages served with 200.
    pub list_pages: u64,
    /// Successful synchronize calls.
    pub sync_calls: u64,
    /// Successful batch-scan calls.
    pub batch_scan_calls: u64,
    /// Successful create-scan-task calls (`create_manual_image_scan_task`).
    pub scan_task_calls: u64,
    /// Successful create-sync-task calls.
    pub sync_task_calls: u64,
    /// Images found by batch-scan and create-scan-task calls, duplicates included.
    pub images_submitted: u64,
    /// Images submitted while still waiting or scanning from an earlier submission.
    pub duplicate_submissions: u64,
    /// Batch-scan items that named no live image of the given type, and create-scan-task
    /// items that matched no listed record (the call is refused then).
    pub unknown_images: u64,
    /// Images with `scannable = false` that were submitted (HSS leaves them as they are).
    pub unscannable_submissions: u64,
    /// Multi-architecture and expired shared images submitted to create-scan-task (the task
    /// fails them at once).
    pub refused_submissions: u64,
    /// Images per successful scan call (batch-scan and create-scan-task): size → calls.
    pub images_per_call: BTreeMap<u64, u64>,
    /// Runs of HSS's own periodic scan policy.
    pub policy_runs: u64,
    /// Account changes applied by churn (calls and ticks of `--churn-per-hour`).
    pub churns: u64,
    pub registries_added: u64,
}

/// The live counters behind [`SimStats`]. One mutex: every update is a few additions, and
/// the admin API wants a consistent snapshot.
#[derive(Default)]
pub(crate) struct StatsRecorder {
    stats: Mutex<SimStats>,
}

impl StatsRecorder {
    pub fn update(&self, f: impl FnOnce(&mut SimStats)) {
        f(&mut lock(&self.stats));
    }

    pub fn request(&self, endpoint: &str) {
        self.update(|s| *s.requests.entry(endpoint.to_owned()).or_default() += 1);
    }

    pub fn response(&self, status: u16) {
        self.update(|s| *s.responses.entry(status).or_default() += 1);
    }

    pub fn snapshot(&self) -> SimStats {
        lock(&self.stats).clone()
    }
}
