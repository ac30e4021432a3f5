//! `hss-scand status`: the local picture, from the database alone.

use anyhow::Context as _;

use super::output::{print, print_json, table, time_or_dash, wire_name};
use crate::cli::Output;
use crate::leader::lease_time;
use crate::startup::Startup;
use crate::status::{self, StatusReport};
use crate::store::Batch;

pub(super) async fn run(startup: &Startup, output: Output) -> anyhow::Result<()> {
    let settings = startup.settings();
    let store = startup.open_store().await?;
    let report = status::gather(
        &store,
        &settings.targets,
        &settings.policy,
        store.clock().now_ms(),
    )
    .await?;
    store.close().await;
    match output {
        Output::Table => print(&to_table(&report)),
        Output::Json => print_json(&(serde_json::to_string_pretty(&report)? + "\n")),
    }
    .context("could not print the status")
}

/// `LEADER …`: which process holds the leader lease, and until when.
fn leader_line(report: &StatusReport, now: i64) -> String {
    match &report.leader {
        None => "LEADER   none yet: no `run`, `scan` or `once` has taken the lease\n\n".to_owned(),
        Some(lease) if lease.expires_at <= now => format!(
            "LEADER   none: the lease of {} (term {}) expired at {}\n\n",
            lease.holder,
            lease.term,
            lease_time(lease.expires_at)
        ),
        Some(lease) => format!(
            "LEADER   {} (term {}, since {}, lease until {})\n\n",
            lease.holder,
            lease.term,
            lease_time(lease.acquired_at),
            lease_time(lease.expires_at)
        ),
    }
}

/// The report as `hss-scand status` prints it.
fn to_table(report: &StatusReport) -> String {
    let mut out = leader_line(report, chrono::Utc::now().timestamp_millis());
    out.push_str(&targets_table(report));
    out.push_str("\nINVENTORY (present images)\n");
    if report.inventory.is_empty() {
        out.push_str("no images yet: run `hss-scand sync`\n");
    } else {
        let rows: Vec<Vec<String>> = report
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
    for (reason, n) in &report.policy.due {
        rows.push(vec!["due".into(), reason.as_str().into(), n.to_string()]);
    }
    for (why, n) in &report.policy.not_due {
        rows.push(vec!["not due".into(), wire_name(why), n.to_string()]);
    }
    for (why, n) in &report.policy.excluded {
        rows.push(vec![
            "never submitted".into(),
            wire_name(why),
            n.to_string(),
        ]);
    }
    out.push_str(&table(&["VERDICT", "WHY", "IMAGES"], &rows));
    out.push_str(&format!(
        "next scan: {} images{}\n",
        report.next_scan,
        report
            .next_scan_cut_by
            .map_or_else(String::new, |cap| format!(" (cut by {})", wire_name(&cap)))
    ));
    out.push_str(
        &match (report.budget.daily_budget, report.budget.remaining) {
            (Some(cap), Some(left)) => format!(
                "budget today (UTC): {} of {cap} used, {left} left\n",
                report.budget.used_today
            ),
            _ => format!(
                "budget today (UTC): {} submitted, no daily budget\n",
                report.budget.used_today
            ),
        },
    );
    out.push_str("\nRECENT SYNCS\n");
    if report.sync_runs.is_empty() {
        out.push_str("none yet\n");
    } else {
        let rows: Vec<Vec<String>> = report
            .sync_runs
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.target.clone(),
                    r.image_type.clone(),
                    time_or_dash(Some(r.started_at)),
                    r.listing.as_str().to_owned(),
                    r.outcome.clone(),
                    r.counts.pages.to_string(),
                    r.counts.seen.to_string(),
                    r.counts.new.to_string(),
                    r.counts.changed.to_string(),
                    r.counts.deleted.to_string(),
                    r.missed.to_string(),
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
                "LISTING",
                "OUTCOME",
                "PAGES",
                "SEEN",
                "NEW",
                "CHANGED",
                "DELETED",
                "MISSED",
                "ERROR",
            ],
            &rows,
        ));
    }
    out.push_str("\nRECENT BATCHES\n");
    if report.batches.is_empty() {
        out.push_str("none yet\n");
    } else {
        let rows: Vec<Vec<String>> = report
            .batches
            .iter()
            .map(|b| {
                vec![
                    b.id.to_string(),
                    b.target.clone(),
                    b.image_type.clone(),
                    time_or_dash(Some(b.created_at)),
                    b.status.clone(),
                    b.items.to_string(),
                    b.task_id.clone().unwrap_or_else(|| "-".to_owned()),
                    task_progress(b),
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
                "SCAN TASK",
                "PROGRESS",
                "ERROR",
            ],
            &rows,
        ));
    }
    out
}

/// Each target's API and what its HSS project says about itself, with a warning line for
/// every target whose own periodic scan is on (its images are paid for twice).
fn targets_table(report: &StatusReport) -> String {
    let mut out = String::from("TARGETS\n");
    let rows: Vec<Vec<String>> = report
        .targets
        .iter()
        .map(|t| {
            let api = match t.fell_back_at {
                Some(at) => format!("{} (since {})", t.api, time_or_dash(Some(at))),
                None => t.api.clone(),
            };
            let native = match &t.native_scan_policy {
                Some(policy) if policy.enabled => format!("ON: {}", policy.describe()),
                Some(_) => "off".to_owned(),
                None => "-".to_owned(),
            };
            let billing = t.pay_per_scan.as_ref();
            let switch = match billing.and_then(|b| b.enabled) {
                Some(true) => "on",
                Some(false) => "OFF",
                None => "-",
            };
            let counted = billing
                .and_then(|b| b.repository_scans)
                .map_or_else(|| "-".to_owned(), |n| n.to_string());
            vec![
                t.name.clone(),
                api,
                native,
                switch.to_owned(),
                counted,
                t.submitted_by_hss_scand.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "TARGET",
            "API",
            "HSS PERIODIC SCAN",
            "PAY-PER-SCAN",
            "SCANS HSS COUNTED",
            "SUBMITTED BY HSS-SCAND",
        ],
        &rows,
    ));
    for t in &report.targets {
        if t.native_scan_policy.as_ref().is_some_and(|p| p.enabled) {
            out.push_str(&format!(
                "WARNING: {}: HSS's own periodic image scan is on; the images in its scope are \
                 scanned, and billed, twice\n",
                t.name
            ));
        }
        if t.pay_per_scan.as_ref().and_then(|b| b.enabled) == Some(false) {
            out.push_str(&format!(
                "WARNING: {}: pay-per-use image scanning is switched off in HSS; scans are refused\n",
                t.name
            ));
        }
    }
    out
}

/// A batch's scan-task progress: `45%`, `done`, `stopped`, …, or `-`.
fn task_progress(batch: &Batch) -> String {
    match batch.task_progress {
        None => "-".to_owned(),
        Some(100) => "done".to_owned(),
        Some(-1) => "stopped".to_owned(),
        Some(-2) => "timed out".to_owned(),
        Some(p) if p < 0 => "error".to_owned(),
        Some(p) => format!("{p}%"),
    }
}
