//! Policy and submission against `hss-sim`, through the scan lifecycle: batches and their
//! limits, a scan right after a scan, HSS.0006, throttling, answers that never came or got
//! lost, budgets across restarts, consecutive failures, stuck scans. Time is the rig's
//! clock, moved by the test: nothing here sleeps.

use std::time::Duration;

use hss_scand::domain::{DueReason, Shutdown};
use hss_scand::pipeline::report::BatchState;
use hss_scand::pipeline::{plan, submit};
use hss_scand::policy::{Excluded, NotDue, Plan};
use hss_scand::sim::{FaultKind, ScriptedFault, SimConfig, SimStats};

use crate::support::config::ConfigText;
use crate::support::rig::spawn_app;
use crate::support::sim::test_config;

/// The API generation a test runs through: every guarantee of submission holds on both.
#[derive(Debug, Clone, Copy)]
enum Api {
    Legacy,
    Current,
}

impl Api {
    fn config(self, config: ConfigText) -> ConfigText {
        match self {
            Api::Legacy => config.set("hss.api", r#""legacy""#),
            Api::Current => config.set("hss.api", r#""current""#),
        }
    }

    /// The simulator's name of the call that submits.
    fn submit_call(self) -> &'static str {
        match self {
            Api::Legacy => "batch_scan",
            Api::Current => "create_scan_task",
        }
    }

    /// Successful submitting calls the simulator counted.
    fn calls(self, stats: &SimStats) -> u64 {
        match self {
            Api::Legacy => stats.batch_scan_calls,
            Api::Current => stats.scan_task_calls,
        }
    }
}

/// A test for each API generation, in a module named after it.
macro_rules! on_both_apis {
    ($($test:ident),* $(,)?) => {
        mod legacy_api {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Api::Legacy).await
                }
            )*
        }
        mod current_api {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Api::Current).await
                }
            )*
        }
    };
}

on_both_apis!(
    batches_respect_the_size_and_type_and_a_second_scan_submits_nothing,
    hss_0006_splits_the_batch_and_sends_both_halves,
    throttling_is_waited_out_and_the_batch_goes_through,
    an_unanswered_batch_hss_never_got_is_found_lost_and_submitted_again,
    an_unanswered_batch_hss_did_get_is_never_sent_twice,
    a_rejected_batch_leaves_its_images_due,
    the_daily_budget_holds_across_restarts_and_caps_cut_in_order,
    failures_are_counted_in_a_row_and_retries_stop,
    a_scan_that_never_finishes_becomes_stuck,
    plan_json_then_scan_submits_exactly_the_plan,
);

/// The default account, whose scans finish at once.
fn instant() -> SimConfig {
    test_config(SimConfig::default().images)
}

async fn batches_respect_the_size_and_type_and_a_second_scan_submits_nothing(api: Api) {
    let r = spawn_app(instant(), |c| api.config(c).set("policy.batch_size", "97")).await;
    r.sync().await;
    let plan = r.plan().await;
    let due = plan.due.len();
    assert!(due > 300, "the synthetic account has work: {due}");

    let report = r.scan().await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.submitted(), due);
    for b in &report.batches {
        assert!(b.items <= 97, "batch {} has {} items", b.batch_id, b.items);
    }
    let stats = r.sim.stats();
    assert_eq!(stats.images_submitted as usize, due);
    assert_eq!(api.calls(&stats) as usize, report.batches.len());
    let batches = r.app.store.recent_batches(1000).await.unwrap();
    assert!(batches.iter().all(|b| b.status == "sent" && b.items <= 97));
    let types: std::collections::HashSet<_> = batches.iter().map(|b| &b.image_type).collect();
    assert_eq!(types.len(), 2, "one type per batch, both types covered");

    let again = r.scan().await;
    assert!(
        again.batches.is_empty(),
        "a scan right after a scan: {again:?}"
    );
    assert_eq!(api.calls(&r.sim.stats()), api.calls(&stats));
}

async fn hss_0006_splits_the_batch_and_sends_both_halves(api: Api) {
    let r = spawn_app(instant(), |c| {
        api.config(c).set("policy.max_images_per_run", "40")
    })
    .await;
    r.sync().await;
    r.sim.fail_next(ScriptedFault::new(
        Some(api.submit_call()),
        1,
        FaultKind::Status {
            status: 400,
            error_code: "HSS.0006".into(),
            retry_after: None,
        },
    ));
    let report = r.scan().await;
    let states: Vec<BatchState> = report.batches.iter().map(|b| b.state).collect();
    assert_eq!(
        states,
        [BatchState::Split, BatchState::Sent, BatchState::Sent]
    );
    assert_eq!(report.submitted(), 40);
    assert_eq!(r.sim.stats().images_submitted, 40);
    let batches = r.app.store.recent_batches(10).await.unwrap();
    let parent = batches
        .iter()
        .find(|b| b.status == "failed")
        .expect("the split one");
    assert_eq!(parent.error_code.as_deref(), Some("HSS.0006"));
    let children: Vec<_> = batches
        .iter()
        .filter(|b| b.parent_id == Some(parent.id))
        .collect();
    assert_eq!(children.len(), 2);
    assert_eq!(children.iter().map(|b| b.items).sum::<i64>(), 40);
}

async fn throttling_is_waited_out_and_the_batch_goes_through(api: Api) {
    let r = spawn_app(instant(), |c| {
        api.config(c).set("policy.max_images_per_run", "10")
    })
    .await;
    r.sync().await;
    r.sim.fail_next(ScriptedFault::new(
        Some(api.submit_call()),
        1,
        FaultKind::Status {
            status: 429,
            error_code: "APIG.0308".into(),
            retry_after: Some(1),
        },
    ));
    let report = r.scan().await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(r.sim.stats().throttled, 1);
    assert_eq!(r.sim.stats().images_submitted, 10);
}

async fn an_unanswered_batch_hss_never_got_is_found_lost_and_submitted_again(api: Api) {
    let r = spawn_app(instant(), |c| {
        api.config(c)
            .set("policy.max_images_per_run", "12")
            .set("policy.submit_grace", r#""300ms""#)
    })
    .await;
    r.sync().await;
    let ids = |plan: &Plan| -> Vec<i64> { plan.due.iter().map(|d| d.row_id).collect() };
    let unanswered = ids(&r.plan().await);
    r.sim
        .fail_next(ScriptedFault::status(api.submit_call(), 1, 503));
    let first = r.scan().await;
    assert_eq!(first.batches[0].state, BatchState::Unknown);
    assert_eq!(
        r.sim.stats().images_submitted,
        0,
        "the 503 came before HSS took it"
    );

    let next = ids(&r.plan().await);
    assert!(
        next.iter().all(|id| !unanswered.contains(id)),
        "never resent blindly while the outcome is unknown"
    );

    r.advance(Duration::from_millis(350));
    let synced = r.sync().await;
    let lost: usize = synced
        .iter()
        .filter_map(|s| s.reconciled.as_ref())
        .map(|c| c.lost)
        .sum();
    assert_eq!(lost, 12);

    assert_eq!(
        ids(&r.plan().await),
        unanswered,
        "due again, in the same place of the order"
    );
    let again = r.scan().await;
    assert_eq!(again.submitted(), 12);
    assert_eq!(r.sim.stats().images_submitted, 12);
    assert_eq!(r.sim.stats().duplicate_submissions, 0);
}

async fn an_unanswered_batch_hss_did_get_is_never_sent_twice(api: Api) {
    let mut sim = SimConfig::default();
    sim.lifecycle.queue_delay = Duration::from_secs(3);
    sim.lifecycle.scan_duration = Duration::from_secs(3);
    let r = spawn_app(sim, |c| {
        api.config(c)
            .set("policy.max_images_per_run", "12")
            .set("policy.submit_grace", r#""300ms""#)
    })
    .await;
    r.sync().await;
    r.sim.fail_next(ScriptedFault::new(
        Some(api.submit_call()),
        1,
        FaultKind::LoseAnswer,
    ));
    let first = r.scan().await;
    assert_eq!(first.batches[0].state, BatchState::Unknown);
    assert_eq!(
        r.sim.stats().images_submitted,
        12,
        "HSS took it; only the answer was lost"
    );

    r.advance(Duration::from_millis(350));
    let synced = r.sync().await;
    let lost: usize = synced
        .iter()
        .filter_map(|s| s.reconciled.as_ref())
        .map(|c| c.lost)
        .sum();
    assert_eq!(lost, 0, "they moved to waiting_for_scan: received");
    let next = r.scan().await;
    let resent: usize = next.submitted();
    assert!(
        r.plan()
            .await
            .tally
            .not_due
            .get(&NotDue::InFlight)
            .copied()
            .unwrap_or(0)
            >= 12,
        "still in flight"
    );
    assert_eq!(r.sim.stats().duplicate_submissions, 0, "resent {resent}");
}

async fn a_rejected_batch_leaves_its_images_due(api: Api) {
    let r = spawn_app(instant(), |c| {
        api.config(c).set("policy.max_images_per_run", "8")
    })
    .await;
    r.sync().await;
    // A refusal that says nothing of the batch's size (HSS.0002: the request could not be
    // parsed); the current API reads HSS.0001 and HSS.0006 as "too large" and halves.
    r.sim.fail_next(ScriptedFault::new(
        Some(api.submit_call()),
        1,
        FaultKind::Status {
            status: 400,
            error_code: "HSS.0002".into(),
            retry_after: None,
        },
    ));
    let first = r.scan().await;
    assert_eq!(first.batches[0].state, BatchState::Failed);
    assert!(!first.succeeded());
    let second = r.scan().await;
    assert_eq!(
        second.submitted(),
        8,
        "rejected means not taken: due at once"
    );
}

async fn the_daily_budget_holds_across_restarts_and_caps_cut_in_order(api: Api) {
    let r = spawn_app(instant(), |c| {
        api.config(c)
            .set("policy.daily_budget", "30")
            .set("policy.max_images_per_run", "20")
    })
    .await;
    r.sync().await;
    let full = r.plan().await;
    assert_eq!(full.due.len(), 20);
    assert_eq!(full.cut_by, Some(hss_scand::policy::Cap::MaxImagesPerRun));
    assert_eq!(r.scan().await.submitted(), 20);

    // A new process: the budget used today is read back from the database.
    let mut r = r;
    r.restart().await;
    let plan = r.plan().await;
    assert_eq!(plan.due.len(), 10, "30 a day, 20 used");
    assert_eq!(plan.cut_by, Some(hss_scand::policy::Cap::DailyBudget));
    let app = &r.app;
    let fence = r.lead().await;
    let report = submit::submit(
        &app.store,
        &app.targets,
        plan,
        10241,
        &fence,
        &Shutdown::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.submitted(), 10);
    let plan = r.plan().await;
    assert!(
        plan.due.is_empty() && plan.due_before_caps > 0,
        "budget spent"
    );
    assert_eq!(
        plan::budget_left(&app.store, &app.settings.policy, r.clock.now_ms())
            .await
            .unwrap(),
        Some(0)
    );
}

async fn failures_are_counted_in_a_row_and_retries_stop(api: Api) {
    let mut sim = instant();
    sim.lifecycle.failure_rate = 1.0;
    let r = spawn_app(sim, |c| {
        api.config(c)
            .set("policy.retry_failed_after", r#""1ms""#)
            .set("policy.max_failed_attempts", "2")
            .set("policy.submit_grace", r#""1ms""#)
    })
    .await;
    r.sync().await;
    // Every due image is submitted, and every scan fails.
    let submitted = r.scan().await.submitted();
    assert!(submitted > 100);

    for round in 1..=2 {
        r.advance(Duration::from_millis(5));
        let synced = r.sync().await;
        let failed: usize = synced
            .iter()
            .filter_map(|s| s.reconciled.as_ref())
            .map(|c| c.failed)
            .sum();
        assert_eq!(failed, submitted, "round {round}: every scan failed");
        let tally = r.plan().await.tally;
        let retry = tally.due.get(&DueReason::FailedRetry).copied().unwrap_or(0) as usize;
        let exhausted = tally
            .not_due
            .get(&NotDue::RetriesExhausted)
            .copied()
            .unwrap_or(0) as usize;
        if round == 1 {
            assert_eq!(
                (retry, exhausted),
                (submitted, 0),
                "one failure: retried: {tally:?}"
            );
            assert_eq!(r.scan().await.submitted(), submitted);
        } else {
            assert_eq!(
                (retry, exhausted),
                (0, submitted),
                "two in a row: given up: {tally:?}"
            );
        }
    }
}

async fn a_scan_that_never_finishes_becomes_stuck(api: Api) {
    let mut sim = SimConfig::default();
    sim.lifecycle.queue_delay = Duration::from_secs(3600);
    let r = spawn_app(sim, |c| {
        api.config(c)
            .set("policy.max_images_per_run", "4")
            .set("policy.scanning_timeout", r#""1s""#)
            .set("policy.submit_grace", r#""1ms""#)
    })
    .await;
    r.sync().await;
    assert_eq!(r.scan().await.submitted(), 4);
    r.advance(Duration::from_millis(20));
    r.sync().await;
    assert_eq!(
        r.plan().await.tally.not_due.get(&NotDue::InFlight),
        Some(&4)
    );
    r.advance(Duration::from_millis(1100));
    let tally = r.plan().await.tally;
    assert_eq!(tally.due.get(&DueReason::Stuck), Some(&4), "{tally:?}");
    assert_eq!(tally.not_due.get(&NotDue::InFlight), None);
}

/// The deprecated batch-scan call's field limits: only its adapter has them.
#[tokio::test]
async fn overlong_names_are_never_submitted_through_the_deprecated_api_and_are_counted() {
    // About one repository (8 images) in 500 has an overlong name.
    let r = spawn_app(test_config(12_000), |c| Api::Legacy.config(c)).await;
    r.sync().await;
    let plan = r.plan().await;
    let too_long = plan
        .tally
        .excluded
        .get(&Excluded::FieldTooLong)
        .copied()
        .unwrap_or(0);
    assert!(
        too_long > 0,
        "the synthetic account has some: {:?}",
        plan.tally
    );
    let due = r.app.store.due_images(&plan.due).await.expect("due images");
    assert_eq!(due.len(), plan.due.len());
    assert!(
        due.iter()
            .all(|d| d.identity.namespace.chars().count() <= 64
                && d.identity.image_name.chars().count() <= 128
                && d.identity.image_version.chars().count() <= 128)
    );
    r.scan().await;
    assert_eq!(r.sim.stats().unknown_images, 0);
}

async fn plan_json_then_scan_submits_exactly_the_plan(api: Api) {
    let r = spawn_app(instant(), |c| api.config(c)).await;
    let config = r.config_file(|c| api.config(c).set("policy.max_images_per_run", "25"));
    let sync = r.cli(&config, &["sync"]).await;
    assert_eq!(sync.code, Some(0), "{}", sync.stderr);

    let plan = r.cli(&config, &["plan", "--output", "json"]).await;
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&plan.stdout).expect("JSON array");
    assert_eq!(rows.len(), 25);
    for row in &rows {
        for key in [
            "target",
            "image_type",
            "namespace",
            "image_name",
            "image_version",
            "instance_id",
            "reason",
            "rule",
            "priority",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
    }
    let reasons: Vec<&str> = rows.iter().filter_map(|r| r["reason"].as_str()).collect();
    let rank = |r: &str| DueReason::parse(r).expect("a known reason");
    assert!(
        reasons.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "order: {reasons:?}"
    );
    assert_eq!(api.calls(&r.sim.stats()), 0, "plan submits nothing");

    let dry = r.cli(&config, &["scan", "--dry-run"]).await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert!(dry.stdout.contains("25 due"), "{}", dry.stdout);
    assert_eq!(api.calls(&r.sim.stats()), 0, "a dry run submits nothing");

    let scan = r.cli(&config, &["scan"]).await;
    assert_eq!(scan.code, Some(0), "{}", scan.stderr);
    assert_eq!(r.sim.stats().images_submitted, 25);

    let status = r.cli(&config, &["status", "--output", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(status["budget"]["used_today"], 25);
    let items: i64 = status["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .map(|b| b["items"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(items, 25);
    assert!(
        status["policy"]["due"]
            .as_object()
            .is_some_and(|d| !d.is_empty())
    );
}
