//! The four questions a team running hss-scand is asked besides "what is due": is a re-pushed
//! tag rescanned, how much is covered, what did the scans find, how long from push to scan;
//! and one daemon serving several accounts. Against `hss-sim`, on the rig's clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hss_scand::domain::{DueReason, Image, ImageType, ScanStatus, Severity, Shutdown};
use hss_scand::metrics::Metrics;
use hss_scand::sim::{Churn, SimConfig};
use hss_scand::startup::Startup;
use hss_scand::status::{self, StatusReport};

use crate::support::config::ConfigText;
use crate::support::rig::{TestApp, spawn_app};
use crate::support::sim::{spawn_sim, test_config};

const TYPES: [ImageType; 2] = [ImageType::Private, ImageType::Shared];
const WEEK_MS: i64 = 7 * 86_400_000;

async fn status_of(r: &TestApp) -> StatusReport {
    status::gather(
        &r.app.store,
        &r.app.targets(),
        &r.app.settings.policy,
        r.clock.now_ms(),
    )
    .await
    .expect("status")
}

/// Every present image of `prod`, as the sync stored it.
async fn present(r: &TestApp) -> Vec<Image> {
    let mut all = Vec::new();
    for t in &TYPES {
        all.extend(r.app.store.present_images("prod", t).await.expect("images"));
    }
    all
}

/// The value of one series in the text exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .expect("a number")
}

/// Due images of `prod` by name and tag, with their reason.
async fn due_by_name(r: &TestApp) -> BTreeMap<String, DueReason> {
    let plan = r.plan().await;
    r.app
        .store
        .due_images(&plan.due)
        .await
        .expect("due")
        .into_iter()
        .map(|d| {
            let i = &d.identity;
            (
                format!("{}/{}:{}", i.namespace, i.image_name, i.image_version),
                d.planned.due.reason,
            )
        })
        .collect()
}

fn name(i: &Image) -> String {
    format!("{}/{}:{}", i.namespace, i.image_name, i.image_version)
}

/// Moves the app's clock past `policy.submit_grace`, so that the next sync can close our
/// submissions.
fn past_submit_grace(r: &TestApp) {
    r.advance(Duration::from_secs(180));
}

/// What HSS's own scans left unsettled is settled first (everything due submitted, scanned,
/// seen), so that afterwards only a re-push can make an image due.
async fn settled(r: &TestApp) {
    r.sync().await;
    assert!(r.scan().await.succeeded());
    past_submit_grace(r);
    r.sync().await;
    // Scans our submissions failed are retried after retry_failed_after; none here.
    let left = due_by_name(r).await;
    assert!(left.is_empty(), "still due after a full cycle: {left:?}");
}

#[tokio::test]
async fn a_re_pushed_tag_is_due_as_changed_and_submitted_once() {
    let r = spawn_app(test_config(600), |c| c.set("hss.api", r#""current""#)).await;
    let metrics = Metrics::new(&r.app.targets());
    settled(&r).await;
    let before: BTreeMap<String, Image> = present(&r)
        .await
        .into_iter()
        .map(|i| (name(&i), i))
        .collect();

    let churn = r.sim.churn(&Churn {
        repushed: 12,
        ..Churn::default()
    });
    assert_eq!(churn.repushed, 12);
    r.sync().await;
    let after = present(&r).await;
    let repushed: BTreeSet<String> = after
        .iter()
        .filter(|i| before[&name(i)].image_digest != i.image_digest)
        .map(name)
        .collect();
    assert_eq!(repushed.len(), 12, "the simulator re-pushed 12 tags");
    // Those the policy can submit at all: scannable, submittable, with a finished scan.
    let eligible: BTreeSet<String> = after
        .iter()
        .filter(|i| {
            repushed.contains(&name(i))
                && i.scannable != Some(false)
                && i.unsubmittable.is_none()
                && i.scan_status.is_finished()
        })
        .map(name)
        .collect();
    assert!(!eligible.is_empty(), "some re-pushed image can be scanned");

    let due = due_by_name(&r).await;
    assert_eq!(
        due.keys().cloned().collect::<BTreeSet<_>>(),
        eligible,
        "exactly the re-pushed images are due"
    );
    assert!(
        due.values().all(|reason| *reason == DueReason::Changed),
        "{due:?}"
    );
    let status = status_of(&r).await;
    assert_eq!(
        status.policy.due.get(&DueReason::Changed).copied(),
        Some(eligible.len() as u64)
    );

    let submitted_before = r.sim.stats().images_submitted;
    // The simulator dates pushes by the wall clock, which has moved on since the rig's clock
    // started; the app's clock must be past the push for its submission to be after it.
    r.advance(Duration::from_secs(60));
    let report = r.scan().await;
    assert!(report.succeeded(), "{report:?}");
    metrics.record_scan(&report);
    assert_eq!(
        sample(
            &metrics.render(),
            "hss_scand_time_to_submit_seconds_count{target=\"prod\"}"
        ),
        0.0,
        "a re-pushed image was submitted before: not a first submission"
    );
    assert_eq!(report.submitted(), eligible.len());
    assert_eq!(
        r.sim.stats().images_submitted - submitted_before,
        eligible.len() as u64
    );
    // Scanned, seen by the next sync: nothing more to do, neither now nor after a while.
    past_submit_grace(&r);
    r.sync().await;
    assert!(due_by_name(&r).await.is_empty());
    assert!(r.scan().await.batches.is_empty(), "submitted once");
    r.advance(Duration::from_secs(3600));
    r.sync().await;
    assert!(r.scan().await.batches.is_empty(), "submitted once");
}

#[tokio::test]
async fn rescan_on_change_off_leaves_a_re_pushed_tag_to_its_schedule() {
    let r = spawn_app(test_config(300), |c| {
        c.set("hss.api", r#""current""#)
            .set("policy.rescan_on_change", "false")
    })
    .await;
    settled(&r).await;
    r.sim.churn(&Churn {
        repushed: 10,
        ..Churn::default()
    });
    r.sync().await;
    assert!(due_by_name(&r).await.is_empty());
    assert!(r.scan().await.batches.is_empty());
}

/// Coverage and findings, by their definitions, from the rows the sync stored.
struct Expected {
    eligible: u64,
    covered: u64,
    oldest_scan: Option<i64>,
    by_severity: BTreeMap<Severity, u64>,
    malicious: u64,
    unsafe_settings: u64,
}

fn expected(images: &[Image], now: i64) -> Expected {
    let eligible: Vec<&Image> = images
        .iter()
        .filter(|i| i.scannable != Some(false) && i.unsubmittable.is_none())
        .collect();
    let success = |i: &&&Image| i.scan_status == ScanStatus::Success;
    let covered = eligible
        .iter()
        .filter(success)
        .filter(|i| i.latest_scan_time.is_some_and(|at| now - at <= WEEK_MS))
        // Pushed since its scan: its content is not covered (nothing of ours was submitted
        // since, in these tests, when this is computed).
        .filter(
            |i| !matches!((i.latest_update_time, i.latest_scan_time), (Some(u), Some(s)) if u > s),
        )
        .count() as u64;
    let mut by_severity = BTreeMap::new();
    for i in images {
        if let Some(s) = Severity::parse(&i.severity_level) {
            *by_severity.entry(s).or_insert(0) += 1;
        }
    }
    Expected {
        eligible: eligible.len() as u64,
        covered,
        oldest_scan: eligible
            .iter()
            .filter(success)
            .filter_map(|i| i.latest_scan_time)
            .min(),
        by_severity,
        malicious: images
            .iter()
            .filter(|i| i.malicious_file_num.unwrap_or(0) > 0)
            .count() as u64,
        unsafe_settings: images
            .iter()
            .filter(|i| i.unsafe_setting_num.unwrap_or(0) > 0)
            .count() as u64,
    }
}

#[tokio::test]
async fn coverage_findings_and_time_to_submit_match_the_account() {
    let r = spawn_app(test_config(800), |c| c.set("hss.api", r#""current""#)).await;
    let metrics = Metrics::new(&r.app.targets());
    r.sync().await;
    let now = r.clock.now_ms();
    let images = present(&r).await;
    let want = expected(&images, now);
    assert!(
        want.covered > 0 && want.covered < want.eligible,
        "the synthetic account is partly covered: {} of {}",
        want.covered,
        want.eligible
    );
    assert!(want.by_severity.len() >= 3 && want.malicious > 0 && want.unsafe_settings > 0);

    let status = status_of(&r).await;
    metrics.set_status(&status);
    let text = metrics.render();
    let coverage = &status.coverage[0];
    assert_eq!(
        (coverage.covered, coverage.eligible),
        (want.covered, want.eligible)
    );
    assert_eq!(coverage.oldest_scan_at, want.oldest_scan);
    let ratio = sample(&text, "hss_scand_coverage_ratio{target=\"prod\"}");
    assert!(
        (ratio - want.covered as f64 / want.eligible as f64).abs() < 1e-9,
        "{ratio}"
    );
    assert_eq!(
        sample(&text, "hss_scand_oldest_scan_age_seconds{target=\"prod\"}"),
        ((now - want.oldest_scan.expect("a scan")) / 1000) as f64
    );
    for severity in Severity::ALL {
        let series = format!(
            "hss_scand_images_at_risk{{severity=\"{}\",target=\"prod\"}}",
            severity.as_str()
        );
        assert_eq!(
            sample(&text, &series),
            want.by_severity.get(&severity).copied().unwrap_or(0) as f64,
            "{series}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "hss_scand_images_with_malicious_files{target=\"prod\"}"
        ),
        want.malicious as f64
    );
    assert_eq!(
        sample(
            &text,
            "hss_scand_images_with_unsafe_settings{target=\"prod\"}"
        ),
        want.unsafe_settings as f64
    );

    // Push to first submission: every image of the first scan is a first submission, from
    // its latest_update_time (the simulator dates every image) to the submission.
    r.advance(Duration::from_secs(600));
    let due = r
        .app
        .store
        .due_images(&r.plan().await.due)
        .await
        .expect("due");
    let report = r.scan().await;
    assert!(report.succeeded());
    metrics.record_scan(&report);
    let text = metrics.render();
    let submitted_at = r.clock.now_ms();
    let waited: f64 = due
        .iter()
        .map(|d| (submitted_at - d.appeared_at) as f64 / 1000.0)
        .sum();
    assert_eq!(
        sample(
            &text,
            "hss_scand_time_to_submit_seconds_count{target=\"prod\"}"
        ),
        report.submitted() as f64
    );
    let sum = sample(
        &text,
        "hss_scand_time_to_submit_seconds_sum{target=\"prod\"}",
    );
    assert!(
        (sum - waited).abs() < 1e-3 * waited.max(1.0),
        "{sum} vs {waited}"
    );

    // Scanned and seen: covered now, but for what our scans cannot cover.
    past_submit_grace(&r);
    r.sync().await;
    let status = status_of(&r).await;
    let want = expected(&present(&r).await, r.clock.now_ms());
    assert_eq!(
        (status.coverage[0].covered, status.coverage[0].eligible),
        (want.covered, want.eligible)
    );
    assert!(status.coverage[0].ratio > ratio, "coverage grew");
}

#[tokio::test]
async fn status_leads_with_coverage_and_lists_the_riskiest_images() {
    let r = spawn_app(test_config(400), |c| c.set("hss.api", r#""current""#)).await;
    r.sync().await;
    let path = r.config_file(|c| c);
    let out = r.cli(&path, &["status"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("COVERAGE"), "{}", out.stdout);
    assert!(out.stdout.contains("FINDINGS"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("RISKIEST IMAGES"),
        "only when asked for"
    );

    let out = r
        .cli(&path, &["status", "--risky", "5", "--output", "json"])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let riskiest = json["riskiest"].as_array().expect("a list");
    assert_eq!(riskiest.len(), 5);
    // The five riskiest of the account, computed from what the sync stored.
    let rank = |i: &Image| (Severity::parse(&i.severity_level), i.vul_num.unwrap_or(0));
    let mut images = present(&r).await;
    images.sort_by_key(|i| std::cmp::Reverse(rank(i)));
    let listed: Vec<(Option<Severity>, i64)> = riskiest
        .iter()
        .map(|i| {
            (
                serde_json::from_value(i["severity"].clone()).expect("a severity"),
                i["vul_num"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let top: Vec<(Option<Severity>, i64)> = images.iter().take(5).map(rank).collect();
    assert_eq!(listed, top);
    assert!(riskiest.iter().all(|i| i["latest_scan_time"].is_i64()));
    assert!(json["coverage"][0]["ratio"].is_f64());

    let table = r.cli(&path, &["status", "--risky"]).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    let section = table
        .stdout
        .split("RISKIEST IMAGES\n")
        .nth(1)
        .expect("the section");
    let rows = section
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .count();
    assert_eq!(rows, 10, "10 when N is left out:\n{section}");
    let bad = r.cli(&path, &["status", "--risky", "0"]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
}

/// Two accounts, each with its own simulator (standing in for its region's endpoint) and
/// keys; neither account's secret appears anywhere.
#[tokio::test]
async fn one_daemon_serves_two_accounts_each_with_its_own_keys_and_endpoint() {
    let account = |n: u64, ak: &str, sk: &str| SimConfig {
        seed: n,
        ak: ak.into(),
        sk: sk.into(),
        project_id: format!("project-{n}"),
        ..test_config(150)
    };
    let a = spawn_sim(account(1, "AK-ALPHA-0001", "SK-ALPHA-SECRET-a1b2c3")).await;
    let b = spawn_sim(account(2, "AK-BRAVO-0002", "SK-BRAVO-SECRET-d4e5f6")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = |who: &str, ak: &str, sk: &str| {
        let (ak_file, sk_file) = (
            dir.path().join(format!("{who}-ak")),
            dir.path().join(format!("{who}-sk")),
        );
        std::fs::write(&ak_file, ak).expect("ak");
        std::fs::write(&sk_file, sk).expect("sk");
        format!(
            "{{ source = \"file\", ak_file = \"{}\", sk_file = \"{}\" }}",
            ak_file.display(),
            sk_file.display()
        )
    };
    let config = ConfigText::new()
        .database(&dir.path().join("state.db"))
        .set("hss.requests_per_second", "1000")
        .set("hss.api", r#""current""#)
        .target("alpha", "project-1", &["private_image", "shared_image"])
        .target_key("endpoint", &format!("\"{}\"", a.base_url()))
        .target_key(
            "credentials",
            &keys("alpha", "AK-ALPHA-0001", "SK-ALPHA-SECRET-a1b2c3"),
        )
        .target("bravo", "project-2", &["private_image", "shared_image"])
        .target_key("endpoint", &format!("\"{}\"", b.base_url()))
        .target_key(
            "credentials",
            &keys("bravo", "AK-BRAVO-0002", "SK-BRAVO-SECRET-d4e5f6"),
        );
    let app = Startup::new(config.settings())
        .build()
        .await
        .expect("no [credentials] keys are needed when every target brings its own");
    let shutdown = Shutdown::new();
    let synced = app.pipeline().sync_all(&shutdown).await.expect("sync");
    assert!(synced.succeeded(), "{}", synced.summary());
    for target in ["alpha", "bravo"] {
        assert!(
            synced
                .reports
                .iter()
                .any(|s| s.target == target && s.counts.seen > 0),
            "{target} listed"
        );
    }
    let fence = match app
        .store
        .acquire_lease("test", Duration::from_secs(600))
        .await
        .expect("lease")
    {
        hss_scand::store::LeaseAttempt::Held(fence) => fence,
        other => panic!("{other:?}"),
    };
    let report = app.pipeline().scan(&shutdown, &fence).await.expect("scan");
    assert!(report.succeeded(), "{}", report.summary());
    app.store.release_lease(&fence).await.expect("release");
    for (target, sim) in [("alpha", &a), ("bravo", &b)] {
        let stats = sim.stats();
        assert_eq!(stats.auth_failures, 0, "{target} signed with its own keys");
        let ours: usize = report
            .batches
            .iter()
            .filter(|batch| batch.target == target)
            .map(|batch| batch.items)
            .sum();
        assert!(ours > 0);
        assert_eq!(
            stats.images_submitted as usize, ours,
            "{target}'s images went to its endpoint"
        );
    }
    app.store.close().await;

    // The binary, with no key in its environment, and verbose logs.
    let path = dir.path().join("config.toml");
    config.write(&path);
    let path_text = path.display().to_string();
    let secrets = [
        "AK-ALPHA-0001",
        "SK-ALPHA-SECRET-a1b2c3",
        "AK-BRAVO-0002",
        "SK-BRAVO-SECRET-d4e5f6",
    ];
    let env = [("RUST_LOG", "debug")];
    for args in [vec!["config", "check"], vec!["once"], vec!["status"]] {
        let mut all = vec!["--config", path_text.as_str()];
        all.extend(args.iter().copied());
        let out = tokio::task::spawn_blocking({
            let all: Vec<String> = all.iter().map(|s| (*s).to_owned()).collect();
            move || {
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                crate::support::cli::run_hss_scand(&all, &env)
            }
        })
        .await
        .expect("ran");
        assert_eq!(out.code, Some(0), "{args:?}: {}{}", out.stdout, out.stderr);
        for secret in secrets {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "{args:?} printed a secret:\n{}{}",
                out.stdout,
                out.stderr
            );
        }
        if args == ["config", "check"] {
            for target in ["alpha", "bravo"] {
                assert!(
                    out.stdout.contains(&format!(
                        "# credentials of target {target}: from files: ak_file"
                    )),
                    "{}",
                    out.stdout
                );
            }
        }
    }
    assert!(a.stats().auth_failures == 0 && b.stats().auth_failures == 0);
}
