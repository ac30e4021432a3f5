//! What each target's HSS project says about itself, read before its images at every sync:
//! the API generation in use (and whether `auto` fell back), HSS's own periodic scan policy,
//! and its pay-per-scan switch and counts. Recorded for `status` and the metrics; a native
//! policy that is on means images in its scope are scanned, and billed, twice, so it is
//! warned about once per process and whenever it changes. hss-scand never changes it.

use super::TargetApi;
use crate::domain::Clock;
use crate::hss::ApiInUse;
use crate::store::{Store, StoreError, TargetFacts};

/// What one survey found.
#[derive(Debug, Clone)]
pub struct Survey {
    pub facts: TargetFacts,
    /// What could not be read, in a sentence each.
    pub errors: Vec<String>,
}

/// Reads and records what `api`'s project says about itself. `process_started` (ms) tells a
/// policy this process has not warned about yet from one it has.
#[tracing::instrument(skip_all, fields(target = %api.target.name))]
pub async fn survey(
    store: &Store,
    api: &TargetApi,
    clock: &Clock,
    process_started: i64,
) -> Result<Survey, StoreError> {
    let target = &api.target.name;
    let mut errors = Vec::new();
    let native_scan_policy = match api.facts.native_policy().await {
        Ok(policy) => policy,
        Err(err) => {
            errors.push(format!("cannot read HSS's own scan policy: {err}"));
            None
        }
    };
    let pay_per_scan = match api.facts.pay_per_scan().await {
        Ok(billing) => billing,
        Err(err) => {
            errors.push(format!("cannot read HSS's pay-per-scan figures: {err}"));
            None
        }
    };
    let in_use = api.scans.api_in_use();
    let previous = store
        .target_facts()
        .await?
        .into_iter()
        .find(|f| &f.target == target);
    let now = clock.now_ms();
    let fell_back_at = match (in_use, &previous) {
        (ApiInUse::LegacyFallback, Some(p)) if p.api == ApiInUse::LegacyFallback.as_str() => {
            p.fell_back_at.or(Some(now))
        }
        (ApiInUse::LegacyFallback, _) => Some(now),
        _ => None,
    };
    if let Some(policy) = native_scan_policy.as_ref().filter(|p| p.enabled) {
        let seen_before = previous.as_ref().is_some_and(|p| {
            p.checked_at >= process_started && p.native_scan_policy.as_ref() == Some(policy)
        });
        if !seen_before {
            tracing::warn!(
                hss_target = %target,
                policy = %policy.describe(),
                "HSS's own periodic image scan is on for this target: images in its scope are \
                 scanned, and billed, by HSS as well as by hss-scand ({}); turn one of the two \
                 off — hss-scand never changes HSS's policy",
                policy.describe()
            );
        }
    }
    let facts = TargetFacts {
        target: target.clone(),
        api: in_use.as_str().to_owned(),
        fell_back_at,
        native_scan_policy,
        pay_per_scan,
        checked_at: now,
    };
    store.record_target_facts(&facts).await?;
    for error in &errors {
        tracing::warn!(hss_target = %target, "{error}");
    }
    Ok(Survey { facts, errors })
}
