//! Incremental listing end to end: between two full listings a sync reads only what changed
//! (by update, sync and completed-scan time), never deletes, and a full listing runs when
//! the rules say and checks the incremental ones before it.
//!
//! The simulator runs on a manual clock here, and every step moves it together with the
//! app's, so that the app's windows ("changed since the previous sync") ask about the time
//! the simulator lived.

use std::time::Duration;

use hss_scand::domain::ImageType;
use hss_scand::metrics::Metrics;
use hss_scand::pipeline::report::{BatchState, SyncReport};
use hss_scand::policy::NotDue;
use hss_scand::sim::{Churn, FaultKind, ScriptedFault, SimConfig};
use hss_scand::store::{ListingKind, SyncOutcome};

use crate::support::config::ConfigText;
use crate::support::postgres::{TEST_URL_VAR, TestDatabase};
use crate::support::rig::{TestApp, spawn_app};
use crate::support::sim::test_config;

const MINUTE: Duration = Duration::from_secs(60);

/// A simulator of `images` on a manual clock whose scans finish at once.
fn sim(images: usize) -> SimConfig {
    SimConfig {
        manual_clock: true,
        ..test_config(images)
    }
}

/// An app with `sync.incremental = mode` on the current API, as `configure` adjusts it.
async fn app(
    sim: SimConfig,
    mode: &str,
    configure: impl FnOnce(ConfigText) -> ConfigText,
) -> TestApp {
    spawn_app(sim, |c| {
        configure(
            c.set("hss.api", r#""current""#)
                .set("sync.incremental", &format!("\"{mode}\"")),
        )
    })
    .await
}

/// Moves the app's clock and the simulator's together.
fn advance(r: &TestApp, by: Duration) {
    r.advance(by);
    r.sim.advance_clock(by);
}

/// List pages the simulator has served so far.
fn pages(r: &TestApp) -> u64 {
    r.sim.stats().list_pages
}

/// The kind of every report, asserting they agree, and that each completed.
fn listed(reports: &[SyncReport]) -> ListingKind {
    assert!(!reports.is_empty());
    for report in reports {
        assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
        assert_eq!(report.listing.kind, reports[0].listing.kind, "{reports:?}");
    }
    reports[0].listing.kind
}

fn sum(reports: &[SyncReport], count: impl Fn(&SyncReport) -> i64) -> i64 {
    reports.iter().map(count).sum()
}

async fn present(r: &TestApp) -> usize {
    let mut n = 0;
    for t in [ImageType::Private, ImageType::Shared] {
        n += r
            .app
            .store
            .present_images("prod", &t)
            .await
            .expect("read")
            .len();
    }
    n
}

#[tokio::test]
async fn incremental_syncs_read_a_fraction_of_the_pages_and_pick_up_every_change() {
    a_fraction_of_the_pages(|c| c).await;
}

/// The same on PostgreSQL, whose backend keeps the listing history and answers the narrow
/// reads of an incremental sync with queries of its own.
#[tokio::test]
#[ignore = "needs PostgreSQL: .ci/run starts one and sets HSS_SCAND_TEST_POSTGRES_URL"]
async fn on_postgres_incremental_syncs_read_a_fraction_of_the_pages_and_pick_up_every_change() {
    let db = TestDatabase::create(TEST_URL_VAR).await;
    a_fraction_of_the_pages(|c| c.set("database.url", &db.toml())).await;
}

/// A full listing, an incremental one after a churn, and a full one after a restart, on the
/// database `on_database` configures.
async fn a_fraction_of_the_pages(on_database: impl FnOnce(ConfigText) -> ConfigText) {
    let r = app(sim(20_000), "auto", on_database).await;
    let before = pages(&r);
    let first = r.sync().await;
    assert_eq!(listed(&first), ListingKind::Full);
    assert!(first[0].listing.reason.contains("first sync"), "{first:?}");
    let full_pages = pages(&r) - before;
    let inventory = present(&r).await;

    advance(&r, 5 * MINUTE);
    let churned = r.sim.churn(&Churn {
        new: 40,
        repushed: 40,
        rescanned: 40,
        deleted: 40,
        ..Churn::default()
    });
    assert_eq!(
        (churned.new, churned.repushed, churned.rescanned),
        (40, 40, 40)
    );
    let before = pages(&r);
    let second = r.sync().await;
    let incremental_pages = pages(&r) - before;
    assert_eq!(listed(&second), ListingKind::Incremental, "{second:?}");
    assert!(
        incremental_pages * 10 < full_pages,
        "{incremental_pages} pages against {full_pages} for a full listing"
    );
    // The churn picks from every image type; the target lists private and shared ones, most
    // of the account. Everything new or changed of those types was read, nothing deleted.
    let new = sum(&second, |s| s.counts.new);
    let changed = sum(&second, |s| s.counts.changed);
    assert!(new > 25 && changed > 50, "new {new}, changed {changed}");
    assert_eq!(sum(&second, |s| s.counts.deleted), 0);
    assert_eq!(present(&r).await, inventory + new as usize);

    // A full listing now finds nothing more to write: the incremental one missed nothing.
    let r2 = restart(r).await;
    let full = r2.sync().await;
    assert_eq!(listed(&full), ListingKind::Full);
    assert_eq!(
        (
            sum(&full, |s| s.counts.new),
            sum(&full, |s| s.counts.changed),
            sum(&full, |s| s.listing.missed)
        ),
        (0, 0, 0),
        "{full:?}"
    );
    assert!(
        sum(&full, |s| s.counts.deleted) > 25,
        "the deletions, at last"
    );
}

/// The same app and database in a new process.
async fn restart(mut r: TestApp) -> TestApp {
    r.restart().await;
    r
}

#[tokio::test]
async fn incremental_syncs_never_delete_and_a_full_listing_runs_after_full_every() {
    let r = app(sim(3_000), "auto", |c| c.set("sync.full_every", r#""1h""#)).await;
    r.sync().await;
    let inventory = present(&r).await;
    assert_eq!(r.sim.delete_images("private_image", 30), 30);
    for _ in 0..11 {
        advance(&r, 5 * MINUTE);
        let synced = r.sync().await;
        assert_eq!(listed(&synced), ListingKind::Incremental);
        assert_eq!(sum(&synced, |s| s.counts.deleted), 0);
    }
    assert_eq!(present(&r).await, inventory, "absence proves nothing");
    advance(&r, 5 * MINUTE);
    let due = r.sync().await;
    assert_eq!(listed(&due), ListingKind::Full);
    assert!(due[0].listing.reason.contains("sync.full_every"), "{due:?}");
    assert_eq!(sum(&due, |s| s.counts.deleted), 30);
    advance(&r, 5 * MINUTE);
    assert_eq!(listed(&r.sync().await), ListingKind::Incremental);
}

#[tokio::test]
async fn a_full_listing_runs_first_in_a_process_and_after_a_listing_that_did_not_complete() {
    let mut r = app(sim(1_000), "on", |c| c).await;
    assert_eq!(listed(&r.sync().await), ListingKind::Full);
    advance(&r, MINUTE);
    assert_eq!(listed(&r.sync().await), ListingKind::Incremental);

    r.restart().await;
    advance(&r, MINUTE);
    let first = r.sync().await;
    assert_eq!(listed(&first), ListingKind::Full);
    assert!(
        first[0]
            .listing
            .reason
            .contains("first sync of this process")
    );
    advance(&r, MINUTE);
    assert_eq!(listed(&r.sync().await), ListingKind::Incremental);

    // A window listing that cannot be trusted (an image listed twice) is partial...
    advance(&r, MINUTE);
    r.sim.churn(&Churn {
        new: 60,
        ..Churn::default()
    });
    r.sim.fail_next(ScriptedFault::new(
        Some("list_registry_images"),
        1_000,
        FaultKind::DuplicateImage,
    ));
    let hostile = r.sync().await;
    r.sim.fail_next(ScriptedFault::new(
        Some("list_registry_images"),
        0,
        FaultKind::Malformed,
    ));
    assert!(
        hostile.iter().all(|s| s.outcome == SyncOutcome::Partial
            && s.listing.kind == ListingKind::Incremental
            && s.counts.deleted == 0),
        "{hostile:?}"
    );
    // ... and the next sync of that type lists everything.
    advance(&r, MINUTE);
    let after = r.sync().await;
    assert_eq!(listed(&after), ListingKind::Full);
    assert!(
        after[0]
            .listing
            .reason
            .contains("previous listing did not complete (partial)"),
        "{after:?}"
    );
    advance(&r, MINUTE);
    assert_eq!(listed(&r.sync().await), ListingKind::Incremental);
}

/// Changes stamped half an hour before they appear: no window of the next syncs sees them.
fn backdated(count: usize) -> Churn {
    Churn {
        new: count,
        repushed: count,
        rescanned: count,
        backdate_ms: 30 * 60_000,
        ..Churn::default()
    }
}

/// Full, then incremental syncs every 5 minutes with a backdated churn among them, then a
/// full listing after `full_every` (1 h): the reports of that full listing.
async fn miss_some(r: &TestApp) -> Vec<SyncReport> {
    assert_eq!(listed(&r.sync().await), ListingKind::Full);
    for step in 0..11 {
        advance(r, 5 * MINUTE);
        if step == 3 {
            r.sim.churn(&backdated(20));
        }
        assert_eq!(listed(&r.sync().await), ListingKind::Incremental);
    }
    advance(r, 5 * MINUTE);
    let full = r.sync().await;
    assert_eq!(listed(&full), ListingKind::Full);
    full
}

#[tokio::test]
async fn a_full_listing_counts_what_the_incremental_ones_missed_and_auto_falls_back() {
    let mut r = app(sim(4_000), "auto", |c| c.set("sync.full_every", r#""1h""#)).await;
    let full = miss_some(&r).await;
    // Everything the full listing found new or changed was backdated, hence missed.
    let missed = sum(&full, |s| s.listing.missed);
    let found = sum(&full, |s| s.counts.new + s.counts.changed);
    assert!(missed > 30, "{full:?}");
    assert_eq!(missed, found, "{full:?}");
    assert!(
        full.iter()
            .any(|s| s.to_string().contains("the incremental listings missed"))
    );
    let runs = r.app.store.recent_sync_runs(2).await.expect("runs");
    assert_eq!(
        runs.iter().map(|run| run.missed).sum::<i64>(),
        missed,
        "recorded with the runs"
    );

    // The count is exported per target.
    let metrics = Metrics::new(&r.app.targets());
    assert!(
        metrics
            .render()
            .contains("hss_scand_incremental_missed_total{target=\"prod\"} 0")
    );
    metrics.record_sync(&full, &[]);
    assert!(
        metrics.render().contains(&format!(
            "hss_scand_incremental_missed_total{{target=\"prod\"}} {missed}"
        )),
        "{}",
        metrics.render()
    );

    // Under "auto" the target now lists fully, sync after sync, until a restart.
    for _ in 0..2 {
        advance(&r, 5 * MINUTE);
        let synced = r.sync().await;
        assert_eq!(listed(&synced), ListingKind::Full);
        assert!(synced[0].listing.reason.contains("missed"), "{synced:?}");
    }
    r.restart().await;
    advance(&r, 5 * MINUTE);
    assert_eq!(listed(&r.sync().await), ListingKind::Full);
    advance(&r, 5 * MINUTE);
    assert_eq!(listed(&r.sync().await), ListingKind::Incremental);
}

#[tokio::test]
async fn with_on_incremental_listing_stays_on_after_a_miss_and_with_off_it_never_runs() {
    let r = app(sim(4_000), "on", |c| c.set("sync.full_every", r#""1h""#)).await;
    let full = miss_some(&r).await;
    assert!(sum(&full, |s| s.listing.missed) > 0);
    advance(&r, 5 * MINUTE);
    assert_eq!(listed(&r.sync().await), ListingKind::Incremental);

    let off = app(sim(1_000), "off", |c| c).await;
    for _ in 0..3 {
        let synced = off.sync().await;
        assert_eq!(listed(&synced), ListingKind::Full);
        assert_eq!(synced[0].listing.reason, "sync.incremental is off");
        advance(&off, 5 * MINUTE);
    }
}

#[tokio::test]
async fn a_change_late_to_show_but_within_the_overlap_is_not_counted_as_missed() {
    let r = app(sim(2_000), "auto", |c| c.set("sync.full_every", r#""30m""#)).await;
    assert_eq!(listed(&r.sync().await), ListingKind::Full);
    for _ in 0..2 {
        advance(&r, 10 * MINUTE);
        assert_eq!(listed(&r.sync().await), ListingKind::Incremental);
    }
    // Stamped 5 minutes before the last incremental listing, shown only after it: a next
    // incremental window would still have read it (it reaches 10 minutes back), so the full
    // listing that comes first must not blame the incremental ones.
    advance(&r, 10 * MINUTE);
    r.sim.churn(&Churn {
        backdate_ms: 15 * 60_000,
        ..backdated(20)
    });
    let full = r.sync().await;
    assert_eq!(listed(&full), ListingKind::Full);
    assert!(
        sum(&full, |s| s.counts.new + s.counts.changed) > 30,
        "{full:?}"
    );
    assert_eq!(sum(&full, |s| s.listing.missed), 0, "{full:?}");
    advance(&r, 10 * MINUTE);
    assert_eq!(
        listed(&r.sync().await),
        ListingKind::Incremental,
        "no fall-back"
    );
}

#[tokio::test]
async fn the_legacy_api_always_lists_fully() {
    let r = spawn_app(sim(1_000), |c| {
        c.set("hss.api", r#""legacy""#)
            .set("sync.incremental", r#""on""#)
    })
    .await;
    assert_eq!(listed(&r.sync().await), ListingKind::Full);
    for _ in 0..2 {
        advance(&r, 5 * MINUTE);
        let synced = r.sync().await;
        assert_eq!(listed(&synced), ListingKind::Full);
        assert!(
            synced[0].listing.reason.contains("no time filters"),
            "{synced:?}"
        );
    }
}

#[tokio::test]
async fn submissions_are_followed_to_their_end_by_incremental_syncs() {
    let r = app(sim(2_000), "auto", |c| {
        c.set("policy.submit_grace", r#""1m""#)
    })
    .await;
    r.sync().await;
    let submitted = r.scan().await.submitted();
    assert!(submitted > 100, "{submitted}");
    advance(&r, 5 * MINUTE);
    let synced = r.sync().await;
    assert_eq!(listed(&synced), ListingKind::Incremental);
    let finished: usize = synced
        .iter()
        .filter_map(|s| s.reconciled.as_ref())
        .map(|c| c.success + c.failed)
        .sum();
    assert_eq!(finished, submitted, "{synced:?}");
    let tally = r.plan().await.tally;
    assert_eq!(tally.not_due.get(&NotDue::InFlight), None, "{tally:?}");
}

#[tokio::test]
async fn a_scan_call_with_an_unknown_outcome_brings_one_full_listing_that_finds_it_lost() {
    let r = app(sim(600), "auto", |c| {
        c.set("policy.submit_grace", r#""1m""#)
            .set("policy.max_images_per_run", "20")
            .set("hss.request_timeout", r#""1s""#)
    })
    .await;
    r.sync().await;
    // The scan calls never return: HSS never received them, and hss-scand cannot know that.
    r.sim.fail_next(ScriptedFault::new(
        Some("create_scan_task"),
        2,
        FaultKind::Hang,
    ));
    let scan = r.scan().await;
    assert_eq!(scan.submitted(), 0);
    assert_eq!(scan.images_in(BatchState::Unknown), 20);
    // Before the grace is over nothing can be told yet: an incremental sync.
    advance(&r, Duration::from_secs(30));
    assert_eq!(listed(&r.sync().await), ListingKind::Incremental);
    advance(&r, 5 * MINUTE);
    let judged = r.sync().await;
    let mut lost = 0;
    for report in &judged {
        let reconciled = report.reconciled.as_ref().expect("complete");
        lost += reconciled.lost;
        // The types with such a submission list fully, once; the others need not.
        if reconciled.lost > 0 {
            assert_eq!(report.listing.kind, ListingKind::Full, "{report:?}");
            assert!(
                report.listing.reason.contains("outcome is unknown"),
                "{report:?}"
            );
        }
    }
    assert_eq!(lost, 20, "{judged:?}");
    advance(&r, 5 * MINUTE);
    assert_eq!(listed(&r.sync().await), ListingKind::Incremental);
}
