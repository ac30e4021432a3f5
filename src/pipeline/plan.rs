//! Planning: stream every present image of each target from the store through the pure
//! policy, under what is left of today's budget. Used by the scan, by `plan` (the dry run)
//! and by `status`; it reads the database and submits nothing.

use std::sync::Arc;

use crate::config::PolicySettings;
use crate::domain::Target;
use crate::policy::{Plan, Planner};
use crate::store::{Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// The start of the UTC day that `now` (ms) falls in: the daily budget's period.
pub fn utc_day_start(now: i64) -> i64 {
    now - now.rem_euclid(DAY_MS)
}

/// What is left of today's budget, `None` when there is no daily budget.
pub async fn budget_left(
    store: &Store,
    policy: &PolicySettings,
    now: i64,
) -> Result<Option<u64>, StoreError> {
    match policy.daily_budget_cap() {
        None => Ok(None),
        Some(cap) => {
            let used = store.submitted_since(utc_day_start(now)).await?;
            Ok(Some(cap.saturating_sub(used)))
        }
    }
}

/// The plan for every target from what the database holds at `now`.
#[tracing::instrument(skip_all, err)]
pub async fn plan(
    store: &Store,
    targets: &[Target],
    policy: &PolicySettings,
    now: i64,
) -> Result<Plan, StoreError> {
    let left = budget_left(store, policy, now).await?;
    let mut planner = Planner::new(policy, left);
    let with_names = !policy.rules.is_empty();
    for target in targets {
        let name: Arc<str> = Arc::from(target.name.as_str());
        store
            .visit_candidates(&target.name, with_names, &mut |c| {
                planner.add(target, &name, c, policy, now)
            })
            .await?;
    }
    Ok(planner.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_day_is_the_utc_day() {
        let day = 20_000 * DAY_MS;
        assert_eq!(utc_day_start(day + 5), day);
        assert_eq!(utc_day_start(day), day);
        assert_eq!(utc_day_start(day - 1), day - DAY_MS);
    }
}
