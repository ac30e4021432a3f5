//! What `hss-scand status` and the daemon's `/status` report: one struct, gathered here from
//! the store and the planner. `commands::status` renders it as a table for people; tools get
//! it as JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::PolicySettings;
use crate::domain::Target;
use crate::pipeline::plan;
use crate::policy::{Cap, Tally};
use crate::store::{Batch, ImageCount, Store, StoreError, SyncRun};

/// How many recent sync runs and batches the report lists.
const RECENT: i64 = 20;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Present images per target, type and scan status.
    pub inventory: Vec<ImageCount>,
    /// What the policy says of every present image right now: due by reason, not due and
    /// never submittable (e.g. `field_too_long`) by why.
    pub policy: Tally,
    /// The same per target (targets without a present image are left out).
    pub policy_by_target: BTreeMap<String, Tally>,
    /// Due images the next scan would submit, after the caps.
    pub next_scan: usize,
    pub next_scan_cut_by: Option<Cap>,
    pub budget: Budget,
    /// The latest sync runs, newest first.
    pub sync_runs: Vec<SyncRun>,
    /// The latest batch-scan calls, newest first.
    pub batches: Vec<Batch>,
}

/// Today's (UTC) use of `policy.daily_budget`.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    pub used_today: u64,
    /// `None`: no daily budget.
    pub daily_budget: Option<u64>,
    pub remaining: Option<u64>,
}

/// The report as the database stands at `now`.
pub async fn gather(
    store: &Store,
    targets: &[Target],
    policy: &PolicySettings,
    now: i64,
) -> Result<StatusReport, StoreError> {
    let plan = plan::plan(store, targets, policy, now).await?;
    let used_today = store.submitted_since(plan::utc_day_start(now)).await?;
    let daily_budget = policy.daily_budget_cap();
    Ok(StatusReport {
        inventory: store.image_counts().await?,
        policy: plan.tally,
        policy_by_target: plan
            .by_target
            .into_iter()
            .map(|(target, tally)| (target.to_string(), tally))
            .collect(),
        next_scan: plan.due.len(),
        next_scan_cut_by: plan.cut_by,
        budget: Budget {
            used_today,
            daily_budget,
            remaining: daily_budget.map(|cap| cap.saturating_sub(used_today)),
        },
        sync_runs: store.recent_sync_runs(RECENT).await?,
        batches: store.recent_batches(RECENT).await?,
    })
}
