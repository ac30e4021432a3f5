//! `hss-scand plan`: the dry run — what the next scan would submit, in order, and why.

use anyhow::Context as _;
use serde::Serialize;

use super::output::{JsonArrayWriter, TableWriter, Widths, rfc3339, wire_name};
use crate::cli::Output;
use crate::pipeline::{plan, submit};
use crate::policy::Plan;
use crate::startup::Startup;
use crate::store::{DueImage, Store};

/// Due images whose names are read from the database at a time while printing.
const PAGE: usize = 10_000;

pub(super) async fn run(startup: &Startup, output: Output) -> anyhow::Result<()> {
    let settings = startup.settings();
    let store = startup.open_store().await?;
    let now = store.clock().now_ms();
    let plan = plan::plan(&store, &settings.targets, &settings.policy, now).await?;
    let printed = match output {
        Output::Table => print_table(&store, &plan, settings.policy.batch_size).await,
        Output::Json => print_json(&store, &plan).await,
    };
    store.close().await;
    printed
}

/// The plan as a table, followed by how it would be batched. Names are read a page at a
/// time, twice (to measure the columns, then to print them): a plan of a million images is
/// printed without holding a million rows.
pub(super) async fn print_table(
    store: &Store,
    plan: &Plan,
    batch_size: usize,
) -> anyhow::Result<()> {
    let mut widths = Widths::of(&HEADER);
    for page in plan.due.chunks(PAGE) {
        for d in store.due_images(page).await? {
            widths.fit(&cells(&d));
        }
    }
    let mut out = TableWriter::stdout(widths);
    let printing = out.row(&HEADER).context("could not print the plan")?;
    if printing {
        'pages: for page in plan.due.chunks(PAGE) {
            for d in store.due_images(page).await? {
                if !out.row(&cells(&d)).context("could not print the plan")? {
                    break 'pages;
                }
            }
        }
    }
    out.finish(&summary_line(plan, batch_size))
        .context("could not print the plan")
}

/// One object per line in a JSON array, a page at a time: a million-image plan is printed
/// without holding a million names.
async fn print_json(store: &Store, plan: &Plan) -> anyhow::Result<()> {
    let mut out = JsonArrayWriter::stdout();
    for page in plan.due.chunks(PAGE) {
        for d in store.due_images(page).await? {
            if !out
                .element(&PlanRow::from(&d))
                .context("could not print the plan")?
            {
                return Ok(());
            }
        }
    }
    out.finish().context("could not print the plan")
}

/// One due image as `plan --output json` prints it.
#[derive(Serialize)]
struct PlanRow<'a> {
    target: &'a str,
    image_type: &'a str,
    namespace: &'a str,
    image_name: &'a str,
    image_version: &'a str,
    instance_id: &'a str,
    reason: &'static str,
    /// `policy.rules[N]`, or null when no rule matched.
    rule: Option<String>,
    priority: i64,
    scan_status: &'a str,
    latest_scan_time: Option<String>,
}

fn rule_name(index: Option<u16>) -> Option<String> {
    index.map(|i| format!("policy.rules[{i}]"))
}

impl<'a> From<&'a DueImage> for PlanRow<'a> {
    fn from(d: &'a DueImage) -> Self {
        let p = &d.planned;
        PlanRow {
            target: p.target(),
            image_type: p.image_type().as_str(),
            namespace: &d.identity.namespace,
            image_name: &d.identity.image_name,
            image_version: &d.identity.image_version,
            instance_id: &d.identity.instance_id,
            reason: p.due.reason.as_str(),
            rule: rule_name(p.due.rule),
            priority: p.due.priority,
            scan_status: d.scan_status.as_str(),
            latest_scan_time: rfc3339(d.latest_scan_time),
        }
    }
}

const HEADER: [&str; 7] = [
    "TARGET",
    "IMAGE TYPE",
    "IMAGE",
    "REASON",
    "RULE",
    "PRIORITY",
    "LAST SCAN",
];

/// One due image as a row of the table.
fn cells(d: &DueImage) -> [String; 7] {
    let r = PlanRow::from(d);
    [
        r.target.to_owned(),
        r.image_type.to_owned(),
        format!("{}/{}:{}", r.namespace, r.image_name, r.image_version),
        r.reason.to_owned(),
        r.rule.unwrap_or_else(|| "-".to_owned()),
        r.priority.to_string(),
        r.latest_scan_time.unwrap_or_else(|| "-".to_owned()),
    ]
}

/// The line under the table: how many, and in how many calls.
fn summary_line(plan: &Plan, batch_size: usize) -> String {
    format!(
        "{} due, {} before caps{}; {} batch-scan call(s) of at most {batch_size}\n",
        plan.due.len(),
        plan.due_before_caps,
        plan.cut_by
            .map_or_else(String::new, |cap| format!(" (cut by {})", wire_name(&cap))),
        batches_needed(plan, batch_size),
    )
}

/// Batches per target and image type, as `submit` will cut them.
fn batches_needed(plan: &Plan, batch_size: usize) -> usize {
    submit::groups(&plan.due)
        .iter()
        .map(|group| {
            let images = plan.due.iter().filter(|d| d.group() == group).count();
            images.div_ceil(batch_size.max(1))
        })
        .sum()
}
