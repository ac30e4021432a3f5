//! HSS's own periodic image scan (`list_image_scan_policy` / `modify_image_scan_policy`).
//! Off unless a flag, the admin API or the PUT turns it on. When on, it runs at once and then
//! every `scan_cycle` days, as a `cycle` task over the selected registries' images; the user
//! guide says scheduled scans cover only third-party (Harbor, JFrog) registries, so SWR
//! registries can be selected but contribute no images. A run is HSS's doing, not a client's:
//! it shows in the task list and in the billed scans, not in the submission counters.

use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::dataset::{DAY_MS, Dataset};
use super::error::ApiError;
use super::limits;
use super::params::{Fields, Query, json_object};
use super::submission::{self, TaskSpec};
use super::{Sim, lock, read, write};

/// The policy's settings, as the admin API and the flags give them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanPolicy {
    pub enabled: bool,
    /// Days between runs: 3, 7 or 14.
    pub scan_cycle: i64,
    /// Risk-type bitmask, request-side constants (`0x7fffffff` = all).
    pub scan_scope: i64,
    /// Images per hour; 0 = unlimited.
    pub rate_limit: i64,
    /// Only images updated in the last this many days (0 = all; 1, 3 or 7).
    pub time_scope: i64,
    /// Registry names or ids; empty selects every registry (`is_all`).
    pub registries: Vec<String>,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            scan_cycle: 7,
            scan_scope: limits::SCAN_SCOPE_ALL,
            rate_limit: 0,
            time_scope: 0,
            registries: Vec::new(),
        }
    }
}

impl ScanPolicy {
    /// Checks the documented values.
    pub fn validate(&self) -> Result<(), ApiError> {
        if ![3, 7, 14].contains(&self.scan_cycle) {
            return Err(ApiError::invalid("scan_cycle", "must be 3, 7 or 14"));
        }
        if !(0..=limits::SCAN_SCOPE_ALL).contains(&self.scan_scope) {
            return Err(ApiError::invalid(
                "scan_scope",
                "must be between 0 and 2147483647",
            ));
        }
        if !(0..=limits::MAX_RATE_LIMIT).contains(&self.rate_limit) {
            return Err(ApiError::invalid(
                "rate_limit",
                "must be between 0 and 1000",
            ));
        }
        if ![0, 1, 3, 7].contains(&self.time_scope) {
            return Err(ApiError::invalid("time_scope", "must be 0, 1, 3 or 7"));
        }
        Ok(())
    }
}

/// The policy and when it runs next.
#[derive(Debug)]
pub struct PolicyState {
    pub policy: ScanPolicy,
    pub id: String,
    /// Next run, when enabled.
    next_run_ms: Option<i64>,
}

impl PolicyState {
    pub fn new(policy: ScanPolicy, seed: u64) -> Self {
        Self {
            next_run_ms: None,
            id: format!(
                "policy-{:012x}",
                super::names::hash(seed, 0, 0x0070_6f6c) & 0xffff_ffff_ffff
            ),
            policy,
        }
    }

    /// Replaces the settings; a policy that becomes enabled runs at the next request.
    pub fn set(&mut self, policy: ScanPolicy, now_ms: i64) {
        self.next_run_ms = policy.enabled.then(|| {
            self.next_run_ms
                .filter(|_| self.policy.enabled)
                .unwrap_or(now_ms)
        });
        self.policy = policy;
    }

    /// Whether a run is due; if so, the next one is scheduled.
    fn due(&mut self, now_ms: i64) -> bool {
        match self.next_run_ms {
            Some(next) if self.policy.enabled && now_ms >= next => {
                self.next_run_ms =
                    Some(now_ms.saturating_add(self.policy.scan_cycle.saturating_mul(DAY_MS)));
                true
            }
            _ => false,
        }
    }
}

fn selected(policy: &ScanPolicy, id: &str, name: &str) -> bool {
    policy.registries.is_empty() || policy.registries.iter().any(|r| r == id || r == name)
}

/// Runs the policy if a run is due. Called before every API request is handled.
pub(crate) fn tick(sim: &Sim, now_ms: i64) {
    let policy = {
        let mut state = lock(&sim.policy);
        if !state.due(now_ms) {
            return;
        }
        (state.policy.clone(), state.id.clone())
    };
    let (policy, policy_id) = policy;
    let mut dataset = write(&sim.dataset);
    let slots: Vec<u16> = dataset
        .registries
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind.is_third_party() && selected(&policy, &r.id, &r.name))
        .filter_map(|(n, _)| u16::try_from(n).ok())
        .collect();
    let since = (policy.time_scope > 0)
        .then(|| now_ms.saturating_sub(policy.time_scope.saturating_mul(DAY_MS)));
    let indices: Vec<usize> = dataset
        .live_list(None)
        .iter()
        .map(|&i| i as usize)
        .filter(|&i| slots.contains(&dataset.record(i).registry))
        .filter(|&i| since.is_none_or(|s| dataset.update_ms(i) >= s))
        .collect();
    let mut tasks = lock(&sim.tasks);
    let mut billing = lock(&sim.billing);
    let spec = TaskSpec {
        name: format!("cycle-scan-{now_ms}"),
        task_type: "cycle",
        policy_id,
        is_all: policy.registries.is_empty(),
        scan_scope: policy.scan_scope,
        rate_limit: policy.rate_limit,
    };
    let id = tasks.next_id();
    let (task, _) = submission::run(&mut dataset, &mut billing, spec, id, &indices, now_ms);
    tasks.push(task);
    sim.stats.update(|s| s.policy_runs += 1);
    tracing::info!(images = indices.len(), "scan policy ran");
}

/// `GET image/scanner-policies?type=cycle|manual`.
pub(crate) fn show(sim: &Sim, query: &Query) -> Result<Json<Value>, ApiError> {
    query.string("enterprise_project_id", 1..=256)?;
    query.one_of("global_image_type", &["local", "registry"])?;
    let kind = query.one_of("type", &["cycle", "manual"])?;
    if kind.is_none() {
        return Err(ApiError::invalid("type", "is required"));
    }
    let state = lock(&sim.policy);
    let policy = &state.policy;
    let dataset = read(&sim.dataset);
    let registry_list: Vec<Value> = dataset
        .registries
        .iter()
        .map(|r| {
            json!({
                "is_selected": selected(policy, &r.id, &r.name),
                "registry_name": r.name,
                "registry_id": r.id,
                "registry_type": r.kind.registry_type(),
            })
        })
        .collect();
    // The response documents its own "all" constant for the scope.
    let scan_scope = if policy.scan_scope == limits::SCAN_SCOPE_ALL {
        limits::POLICY_SCOPE_ALL
    } else {
        policy.scan_scope
    };
    Ok(Json(json!({
        "is_all": policy.registries.is_empty(),
        "enabled": policy.enabled,
        "scan_cycle": policy.scan_cycle,
        "scan_scope": scan_scope,
        "rate_limit": policy.rate_limit,
        "time_scope": policy.time_scope,
        "total_registry_num": registry_list.len(),
        "registry_list": registry_list,
    })))
}

/// `PUT image/scanner-policies`: a full replacement, every field required.
pub(crate) fn modify(sim: &Sim, query: &Query, body: &[u8], now_ms: i64) -> Result<(), ApiError> {
    query.string("enterprise_project_id", 1..=256)?;
    let map = json_object(body)?;
    let f = Fields::new(&map, "");
    let required_int = |name: &str| {
        f.int(name)?
            .ok_or_else(|| ApiError::invalid(name, "is required"))
    };
    let policy = ScanPolicy {
        enabled: f
            .bool("enabled")?
            .ok_or_else(|| ApiError::invalid("enabled", "is required"))?,
        scan_cycle: required_int("scan_cycle")?,
        scan_scope: required_int("scan_scope")?,
        rate_limit: required_int("rate_limit")?,
        time_scope: required_int("time_scope")?,
        registries: registry_info(&f, &read(&sim.dataset))?,
    };
    policy.validate()?;
    lock(&sim.policy).set(policy, now_ms);
    Ok(())
}

/// `registry_info[]`: every entry must name an existing registry by id, name and type.
fn registry_info(f: &Fields<'_, '_>, dataset: &Dataset) -> Result<Vec<String>, ApiError> {
    let items = f
        .array("registry_info")?
        .ok_or_else(|| ApiError::invalid("registry_info", "is required"))?;
    let mut ids = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let path = format!("registry_info[{n}]");
        let Value::Object(object) = item else {
            return Err(ApiError::invalid(&path, "must be an object"));
        };
        let item = Fields::new(object, &path);
        let id = item.required("registry_id", 1..=64)?;
        let name = item.required("registry_name", 1..=128)?;
        let kind = item.required("registry_type", 1..=32)?;
        let known = dataset
            .registry_by_id(id)
            .map(|slot| &dataset.registries[slot])
            .is_some_and(|r| r.name == name && r.kind.registry_type() == kind);
        if !known {
            return Err(ApiError::invalid(
                &path,
                "names no registry of this account",
            ));
        }
        ids.push(id.to_owned());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enabled_policy_is_due_at_once_then_every_cycle() {
        let mut state = PolicyState::new(ScanPolicy::default(), 1);
        assert!(!state.due(0));
        state.set(
            ScanPolicy {
                enabled: true,
                scan_cycle: 3,
                ..ScanPolicy::default()
            },
            1_000,
        );
        assert!(state.due(1_000));
        assert!(!state.due(1_000 + 3 * DAY_MS - 1));
        assert!(state.due(1_000 + 3 * DAY_MS));
        // A configuration nobody validated must not overflow the clock.
        let mut state = PolicyState::new(ScanPolicy::default(), 1);
        state.set(
            ScanPolicy {
                enabled: true,
                scan_cycle: i64::MAX,
                time_scope: i64::MAX,
                ..ScanPolicy::default()
            },
            0,
        );
        assert!(state.due(5));
        assert!(!state.due(i64::MAX - 1));
        assert!(
            ScanPolicy {
                scan_cycle: 5,
                ..ScanPolicy::default()
            }
            .validate()
            .is_err()
        );
    }
}
