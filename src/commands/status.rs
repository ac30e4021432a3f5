//! `hss-scand status`: the local picture, from the database alone.

use anyhow::Context as _;

use super::output::{print, table, time_or_dash, wire_name};
use crate::cli::Output;
use crate::startup::Startup;
use crate::status::{self, StatusReport};

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
    let text = match output {
        Output::Table => to_table(&report),
        Output::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    print(&text).context("could not print the status")
}

/// The report as `hss-scand status` prints it.
fn to_table(report: &StatusReport) -> String {
    let mut out = String::from("INVENTORY (present images)\n");
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
