//! `hss-scand status`: the local picture, from the database alone.

use anyhow::Context as _;

use super::output::{print, print_json, table, time_or_dash, wire_name};
use crate::cli::Output;
use crate::domain::Severity;
use crate::leader::lease_time;
use crate::startup::Startup;
use crate::status::{self, StatusReport};
use crate::store::{Batch, RiskyImage};

pub(super) async fn run(
    startup: &Startup,
    output: Output,
    risky: Option<u32>,
) -> anyhow::Result<()> {
    let settings = startup.settings();
    let store = startup.open_store().await?;
    let mut report = status::gather(
        &store,
        &settings.targets,
        &settings.policy,
        store.clock().now_ms(),
    )
    .await?;
    if let Some(limit) = risky {
        report.riskiest = Some(store.riskiest_images(i64::from(limit)).await?);
    }
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

/// `COVERAGE`, `FINDINGS` (and with `--risky`, `RISKIEST IMAGES`): what a team reports and
/// acts on first.
fn coverage_and_findings(report: &StatusReport) -> String {
    let mut out = String::from("COVERAGE (scanned successfully within rescan_after)\n");
    let rows: Vec<Vec<String>> = report
        .coverage
        .iter()
        .map(|c| {
            vec![
                c.target.clone(),
                format!("{:.1}%", c.ratio * 100.0),
                format!("{} of {}", c.covered, c.eligible),
                c.oldest_scan_at.map_or_else(
                    || "-".to_owned(),
                    |at| {
                        format!(
                            "{} ({} ago)",
                            time_or_dash(Some(at)),
                            age(c.oldest_scan_age_seconds)
                        )
                    },
                ),
            ]
        })
        .collect();
    out.push_str(&table(
        &["TARGET", "COVERAGE", "IMAGES", "OLDEST SCAN"],
        &rows,
    ));
    out.push_str("\nFINDINGS (present images, as of their last scan)\n");
    let rows: Vec<Vec<String>> = report
        .findings
        .iter()
        .map(|f| {
            let mut row = vec![f.target.clone()];
            row.extend(
                Severity::ALL
                    .iter()
                    .rev()
                    .map(|s| f.by_severity.get(s).copied().unwrap_or(0).to_string()),
            );
            row.push(f.with_malicious_files.to_string());
            row.push(f.with_unsafe_settings.to_string());
            row
        })
        .collect();
    out.push_str(&table(
        &[
            "TARGET",
            "HIGH",
            "MEDIUM",
            "LOW",
            "SECURITY",
            "MALICIOUS FILES",
            "UNSAFE SETTINGS",
        ],
        &rows,
    ));
    if let Some(riskiest) = &report.riskiest {
        out.push_str("\nRISKIEST IMAGES\n");
        if riskiest.is_empty() {
            out.push_str("none: no present image has a finding\n");
        } else {
            out.push_str(&riskiest_table(riskiest));
        }
    }
    out
}

/// The riskiest images, one line each, most severe first.
fn riskiest_table(images: &[RiskyImage]) -> String {
    let number = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            let mut image = format!("{}/{}:{}", i.namespace, i.image_name, i.image_version);
            if !i.registry_name.is_empty() {
                image = format!("{} {image}", i.registry_name);
            }
            vec![
                i.target.clone(),
                i.image_type.clone(),
                image,
                i.severity.map_or("-", Severity::as_str).to_owned(),
                number(i.vul_num),
                number(i.malicious_file_num),
                number(i.unsafe_setting_num),
                time_or_dash(i.latest_scan_time),
            ]
        })
        .collect();
    table(
        &[
            "TARGET",
            "IMAGE TYPE",
            "IMAGE",
            "SEVERITY",
            "VULNERABILITIES",
            "MALICIOUS FILES",
            "UNSAFE SETTINGS",
            "LAST SCAN",
        ],
        &rows,
    )
}

/// Seconds as the largest whole units an operator reads at a glance: `3d 4h`, `5h 2m`, `40s`.
fn age(seconds: i64) -> String {
    let (d, h, m) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The report as `hss-scand status` prints it.
fn to_table(report: &StatusReport) -> String {
    let mut out = coverage_and_findings(report);
    out.push('\n');
    out.push_str(&leader_line(report, chrono::Utc::now().timestamp_millis()));
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
                    r.outcome.clone(),
                    r.counts.pages.to_string(),
                    r.counts.seen.to_string(),
                    r.counts.new.to_string(),
                    r.counts.changed.to_string(),
                    r.counts.deleted.to_string(),
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
