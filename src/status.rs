//! What `hss-scand status` and the daemon's `/status` report: one struct, rendered as a table
//! for people or as JSON for tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::config::PolicySettings;
use crate::domain::Target;
use crate::policy::{Cap, Tally};
use crate::store::{Batch, ImageCount, Store, StoreError, SyncRun, now_ms};
use crate::submit;

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

pub async fn gather(
    store: &Store,
    targets: &[Target],
    policy: &PolicySettings,
) -> Result<StatusReport, StoreError> {
    let now = now_ms();
    let plan = submit::plan(store, targets, policy, now).await?;
    let used_today = store.submitted_since(submit::utc_day_start(now)).await?;
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

/// A serde enum's wire name (`field_too_long`), for the table.
fn name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Milliseconds since the epoch as an RFC 3339 UTC time, or `-`.
fn time(ms: Option<i64>) -> String {
    ms.and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(
            || "-".to_owned(),
            |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
}

/// Left-aligned columns, two spaces apart, one line per row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &mut header.iter().copied());
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}

impl StatusReport {
    pub fn to_table(&self) -> String {
        let mut out = String::from("INVENTORY (present images)\n");
        if self.inventory.is_empty() {
            out.push_str("no images yet: run `hss-scand sync`\n");
        } else {
            let rows: Vec<Vec<String>> = self
                .inventory
                .iter()
                .map(|c| {
                    vec![
                        c.target.clone(),
                        c.image_type.clone(),
                        c.scan_status.clone(),
                        c.images.to_string(),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["TARGET", "IMAGE TYPE", "SCAN STATUS", "IMAGES"],
                &rows,
            ));
        }
        out.push_str("\nPOLICY (present images)\n");
        let mut rows: Vec<Vec<String>> = Vec::new();
        for (reason, n) in &self.policy.due {
            rows.push(vec!["due".into(), reason.as_str().into(), n.to_string()]);
        }
        for (why, n) in &self.policy.not_due {
            rows.push(vec!["not due".into(), name(why), n.to_string()]);
        }
        for (why, n) in &self.policy.excluded {
            rows.push(vec!["never submitted".into(), name(why), n.to_string()]);
        }
        out.push_str(&table(&["VERDICT", "WHY", "IMAGES"], &rows));
        out.push_str(&format!(
            "next scan: {} images{}\n",
            self.next_scan,
            self.next_scan_cut_by
                .map_or_else(String::new, |cap| format!(" (cut by {})", name(&cap)))
        ));
        out.push_str(&match (self.budget.daily_budget, self.budget.remaining) {
            (Some(cap), Some(left)) => format!(
                "budget today (UTC): {} of {cap} used, {left} left\n",
                self.budget.used_today
            ),
            _ => format!(
                "budget today (UTC): {} submitted, no daily budget\n",
                self.budget.used_today
            ),
        });
        out.push_str("\nRECENT SYNCS\n");
        if self.sync_runs.is_empty() {
            out.push_str("none yet\n");
        } else {
            let rows: Vec<Vec<String>> = self
                .sync_runs
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.target.clone(),
                        r.image_type.clone(),
                        time(Some(r.started_at)),
                        r.outcome.clone(),
                        r.pages.to_string(),
                        r.seen.to_string(),
                        r.new.to_string(),
                        r.changed.to_string(),
                        r.deleted.to_string(),
                        r.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "RUN",
                    "TARGET",
                    "IMAGE TYPE",
                    "STARTED",
                    "OUTCOME",
                    "PAGES",
                    "SEEN",
                    "NEW",
                    "CHANGED",
                    "DELETED",
                    "ERROR",
                ],
                &rows,
            ));
        }
        out.push_str("\nRECENT BATCHES\n");
        if self.batches.is_empty() {
            out.push_str("none yet\n");
        } else {
            let rows: Vec<Vec<String>> = self
                .batches
                .iter()
                .map(|b| {
                    vec![
                        b.id.to_string(),
                        b.target.clone(),
                        b.image_type.clone(),
                        time(Some(b.created_at)),
                        b.status.clone(),
                        b.items.to_string(),
                        b.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "BATCH",
                    "TARGET",
                    "IMAGE TYPE",
                    "CREATED",
                    "STATUS",
                    "IMAGES",
                    "ERROR",
                ],
                &rows,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let t = table(&["A", "LONGER"], &[vec!["xxxx".into(), "y".into()]]);
        assert_eq!(t, "A     LONGER\nxxxx  y\n");
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(time(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(time(None), "-");
    }
}
