//! Pay-per-use image scanning: the billing switch (`show_switches_status`, code
//! `image_pay_per_scan`, with the other documented switch codes), and the usage statistics
//! (`show_image_pay_per_scan_statistics`) derived from what the simulator scanned.
//!
//! HSS bills one successful scan of one image. A submission's outcome and end time are known
//! when it is made, so a successful one is booked as "ends at T" and counted once the clock
//! passes T; a stopped task takes its unfinished ones back.

use std::collections::BTreeMap;

use axum::Json;
use serde::Serialize;
use serde_json::{Value, json};

use super::Sim;
use super::dataset::Status;
use super::error::ApiError;
use super::limits;
use super::params::{Fields, Query, json_object};
use super::{lock, read};

/// The switch codes `show_switches_status` documents.
pub const SWITCH_CODES: [&str; 5] = [
    "malware_sample_high_detect",
    "image_pay_per_scan",
    "image_popup",
    "image_free_to_pay_popup",
    "display_unprotected_host",
];
pub const PAY_PER_SCAN: &str = "image_pay_per_scan";

#[derive(Debug)]
pub struct Billing {
    switches: BTreeMap<&'static str, bool>,
    /// Successful scans that have ended.
    completed: u64,
    /// Successful scans still running: end time → how many.
    pending: BTreeMap<i64, u64>,
}

impl Billing {
    pub fn new(pay_per_scan: bool) -> Self {
        let mut switches: BTreeMap<&'static str, bool> =
            SWITCH_CODES.iter().map(|&c| (c, false)).collect();
        switches.insert(PAY_PER_SCAN, pay_per_scan);
        Self {
            switches,
            completed: 0,
            pending: BTreeMap::new(),
        }
    }

    pub fn pay_per_scan(&self) -> bool {
        self.switches.get(PAY_PER_SCAN).copied().unwrap_or(false)
    }

    pub fn switch(&self, code: &str) -> Option<bool> {
        self.switches.get(code).copied()
    }

    /// Sets a documented switch; false for an unknown code.
    pub fn set_switch(&mut self, code: &str, enabled: bool) -> bool {
        match self.switches.get_mut(code) {
            Some(value) => {
                *value = enabled;
                true
            }
            None => false,
        }
    }

    /// A successful scan that ends at `finish_ms`.
    pub fn expect_success(&mut self, finish_ms: i64) {
        *self.pending.entry(finish_ms).or_default() += 1;
    }

    /// Takes back a booked scan that will not end (its task was stopped).
    pub fn cancel_success(&mut self, finish_ms: i64) {
        if let Some(count) = self.pending.get_mut(&finish_ms) {
            *count -= 1;
            if *count == 0 {
                self.pending.remove(&finish_ms);
            }
        }
    }

    /// Scans that ended already when they were booked (HSS's own rescans).
    pub fn add_completed(&mut self, scans: u64) {
        self.completed += scans;
    }

    /// Successful scans that have ended by `now_ms`.
    pub fn successful_scans(&mut self, now_ms: i64) -> u64 {
        let later = self.pending.split_off(&now_ms.saturating_add(1));
        self.completed += self.pending.values().sum::<u64>();
        self.pending = later;
        self.completed
    }
}

/// `ImageTypeRiskInfo`, with both the misspelt and the corrected registry field.
#[derive(Debug, Serialize)]
struct RiskInfo {
    local: u64,
    registriy: u64,
    registry: u64,
    cicd: u64,
}

impl RiskInfo {
    fn registry(n: u64) -> Self {
        Self {
            local: 0,
            registriy: n,
            registry: n,
            cicd: 0,
        }
    }
}

/// `GET image/pay-per-scan/statistics`. One pass over the live images for the per-class
/// counts: a statistics call is rare, and the counts must follow the account exactly.
pub fn statistics(sim: &Sim, query: &Query, now_ms: i64) -> Result<Json<Value>, ApiError> {
    query.string("enterprise_project_id", 1..=256)?;
    let (mut total, mut unscan, mut has_risk, mut high_risk) = (0u64, 0u64, 0u64, 0u64);
    {
        let dataset = read(&sim.dataset);
        for &i in dataset.live_list(None) {
            let index = i as usize;
            total += 1;
            match dataset.state(index, now_ms).0 {
                Status::Unscan => unscan += 1,
                Status::Success => {
                    let findings = dataset.findings(index);
                    has_risk += u64::from(findings.risky());
                    high_risk += u64::from(findings.severity() == super::dataset::Severity::High);
                }
                _ => {}
            }
        }
    }
    let scans = lock(&sim.billing).successful_scans(now_ms);
    let free = limits::FREE_SCANS_PER_MONTH;
    Ok(Json(json!({
        "repository_scan_num": scans,
        "cicd_scan_num": 0,
        "free_quota_num": (free - scans.min(free as u64) as i64),
        "already_given": true,
        "image_free_quota": free,
        "high_risk": RiskInfo::registry(high_risk),
        "has_risk": RiskInfo::registry(has_risk),
        "total": RiskInfo::registry(total),
        "unscan": RiskInfo::registry(unscan),
    })))
}

fn switch_code(code: &str) -> Result<&str, ApiError> {
    if SWITCH_CODES.contains(&code) {
        Ok(code)
    } else {
        Err(ApiError::invalid(
            "code",
            format!("must be one of {}", SWITCH_CODES.join(", ")),
        ))
    }
}

/// `GET setting/switches/{code}`.
pub fn show_switch(sim: &Sim, code: &str, query: &Query) -> Result<Json<Value>, ApiError> {
    query.string("enterprise_project_id", 1..=256)?;
    let code = switch_code(code)?;
    let enabled = lock(&sim.billing).switch(code).unwrap_or(false);
    Ok(Json(json!({ "enabled": enabled })))
}

/// `PUT setting/switches/{code}` with `{"enabled": bool}`.
pub fn change_switch(sim: &Sim, code: &str, query: &Query, body: &[u8]) -> Result<(), ApiError> {
    query.string("enterprise_project_id", 1..=256)?;
    let code = switch_code(code)?;
    let map = json_object(body)?;
    let enabled = Fields::new(&map, "")
        .bool("enabled")?
        .ok_or_else(|| ApiError::invalid("enabled", "is required"))?;
    lock(&sim.billing).set_switch(code, enabled);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booked_scans_count_once_they_end() {
        let mut billing = Billing::new(true);
        billing.expect_success(100);
        billing.expect_success(100);
        billing.expect_success(200);
        billing.expect_success(300);
        billing.cancel_success(300);
        billing.cancel_success(999);
        assert_eq!(billing.successful_scans(99), 0);
        assert_eq!(billing.successful_scans(100), 2);
        billing.add_completed(5);
        assert_eq!(billing.successful_scans(1_000), 8);
        assert!(billing.pay_per_scan());
        assert!(billing.set_switch(PAY_PER_SCAN, false) && !billing.pay_per_scan());
        assert!(!billing.set_switch("nope", true));
    }
}
