//! What `hss-scand status` and the daemon's `/status` report: one struct, gathered here from
//! the store and the planner. `commands::status` renders it as a table for people; tools get
//! it as JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::PolicySettings;
use crate::domain::Target;
use crate::domain::{NativeScanPolicy, PayPerScan};
use crate::pipeline::plan;
use crate::policy::{Cap, Tally};
use crate::store::{
    Batch, ImageCount, LeaseState, RiskCounts, RiskyImage, Store, StoreError, SyncRun,
};

/// How many recent sync runs and batches the report lists.
const RECENT: i64 = 20;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Per configured target, the number a team reports: the share of its eligible images
    /// scanned successfully within their rule's `rescan_after`, and the oldest such scan.
    pub coverage: Vec<TargetCoverage>,
    /// Per configured target, what the listing says its present images' last scans found.
    pub findings: Vec<RiskCounts>,
    /// The riskiest present images, most severe first (`status --risky`); left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub riskiest: Option<Vec<RiskyImage>>,
    /// Each configured target: the API its calls go through, and what its HSS project says
    /// about itself as of the last sync.
    pub targets: Vec<TargetStatus>,
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
    /// Who holds the leader lease (the replica that syncs and scans), and until when; `null`
    /// before any process took it. An expired lease is shown too: nobody leads then.
    pub leader: Option<LeaseState>,
}

/// How well one target is covered, from the same policy pass that makes the plan.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCoverage {
    pub target: String,
    /// Present images that are scannable, of a configured type, submittable and not skipped.
    pub eligible: u64,
    /// Of those, scanned successfully within their rule's `rescan_after`, and (where
    /// `rescan_on_change` applies) not changed since.
    pub covered: u64,
    /// `covered / eligible`; 1 with no eligible image.
    pub ratio: f64,
    /// The oldest last successful scan of an eligible image (ms), among those HSS dates.
    pub oldest_scan_at: Option<i64>,
    /// How old that scan is, in seconds; 0 with none.
    pub oldest_scan_age_seconds: i64,
}

/// One target, as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    /// `current`, `legacy`, `legacy_fallback` (auto found no current API) or `undecided`
    /// (no call has told yet).
    pub api: String,
    /// When `auto` fell back to the deprecated API (ms).
    pub fell_back_at: Option<i64>,
    /// HSS's own periodic scan policy; `null` until a sync has read it, or on the deprecated
    /// API, which cannot.
    pub native_scan_policy: Option<NativeScanPolicy>,
    /// HSS's pay-per-scan switch and counts.
    pub pay_per_scan: Option<PayPerScan>,
    /// Images hss-scand submitted for this target, ever (in batches HSS may have taken).
    pub submitted_by_hss_scand: u64,
    /// When the facts were read (ms); `None` before the first sync.
    pub checked_at: Option<i64>,
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
    // Every configured target, also one without images yet, so that its series and lines
    // exist (at 1 and 0) rather than go missing.
    let coverage = targets
        .iter()
        .map(|target| {
            let tally = plan
                .by_target
                .iter()
                .find(|(name, _)| **name == *target.name)
                .map(|(_, tally)| tally.clone())
                .unwrap_or_default();
            TargetCoverage {
                target: target.name.clone(),
                eligible: tally.eligible(),
                covered: tally.covered,
                ratio: tally.coverage_ratio(),
                oldest_scan_at: tally.oldest_scan,
                oldest_scan_age_seconds: tally.oldest_scan_age(now) / 1000,
            }
        })
        .collect();
    let mut risks = store.risk_counts().await?;
    let findings = targets
        .iter()
        .map(
            |target| match risks.iter().position(|r| r.target == target.name) {
                Some(at) => risks.swap_remove(at),
                None => RiskCounts {
                    target: target.name.clone(),
                    ..RiskCounts::default()
                },
            },
        )
        .collect();
    let used_today = store.submitted_since(plan::utc_day_start(now)).await?;
    let daily_budget = policy.daily_budget_cap();
    let facts = store.target_facts().await?;
    let mut target_statuses = Vec::with_capacity(targets.len());
    for target in targets {
        let known = facts.iter().find(|f| f.target == target.name);
        target_statuses.push(TargetStatus {
            name: target.name.clone(),
            api: known.map_or_else(|| "undecided".to_owned(), |f| f.api.clone()),
            fell_back_at: known.and_then(|f| f.fell_back_at),
            native_scan_policy: known.and_then(|f| f.native_scan_policy.clone()),
            pay_per_scan: known.and_then(|f| f.pay_per_scan.clone()),
            submitted_by_hss_scand: store.submitted_total(&target.name).await?,
            checked_at: known.map(|f| f.checked_at),
        });
    }
    Ok(StatusReport {
        coverage,
        findings,
        riskiest: None,
        targets: target_statuses,
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
        leader: store.lease().await?,
    })
}
