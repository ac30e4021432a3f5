//! hss-scand on PostgreSQL, end to end: `db copy` from SQLite and what the copy then shows
//! and does, `once` against the simulator, and a database that goes away under a running
//! daemon. Each test has a database of its own on the server HSS_SCAND_TEST_POSTGRES_URL
//! names, and is ignored without one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hss_scand::domain::{Candidate, Clock, ImageType, Job, JobOutcome};
use hss_scand::sim::SimConfig;
use hss_scand::store::{self, Store};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::support::config::ConfigText;
use crate::support::postgres::{TEST_URL_VAR, TestDatabase};
use crate::support::rig::{TestApp, spawn_app};
use crate::support::sim::{spawn_sim, test_config};

const TYPES: [ImageType; 2] = [ImageType::Private, ImageType::Shared];

/// The password of `url`, to check that no output shows it.
fn password(url: &str) -> String {
    url::Url::parse(url)
        .expect("the URL parses")
        .password()
        .expect("the test server's URL has a password")
        .to_owned()
}

/// Neither `text` shows the password of `url`, and it says it redacted one.
fn assert_redacted(url: &str, texts: &[&str]) {
    let secret = format!(":{}@", password(url));
    let all = texts.concat();
    assert!(!all.contains(&secret), "the password leaked:\n{all}");
    assert!(all.contains(":[redacted]@"), "no redacted URL:\n{all}");
}

/// The configuration of `r` on another database, in a file of its own.
fn config_on(r: &TestApp, name: &str, url: &str) -> std::path::PathBuf {
    let path = r.dir.path().join(name);
    r.config
        .clone()
        .set("database.url", &format!("{url:?}"))
        .write(&path);
    path
}

/// A command's JSON output.
fn json(outcome: &crate::support::cli::Outcome) -> serde_json::Value {
    assert_eq!(
        outcome.code,
        Some(0),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    serde_json::from_str(&outcome.stdout).expect("JSON output")
}

async fn candidates(store: &Store, target: &str) -> Vec<Candidate> {
    let mut seen = Vec::new();
    store
        .visit_candidates(target, true, &mut |c| seen.push(c.clone()))
        .await
        .expect("visit");
    seen
}

/// Everything the store reads back, for one target, as comparable text.
async fn everything(store: &Store, target: &str) -> BTreeMap<&'static str, String> {
    let mut all = BTreeMap::new();
    let mut known = Vec::new();
    let mut present = Vec::new();
    let mut open = Vec::new();
    let mut held = Vec::new();
    for t in &TYPES {
        let mut k: Vec<_> = store
            .known_images(target, t)
            .await
            .expect("known")
            .into_iter()
            .collect();
        k.sort_unstable_by_key(|(key, _)| *key);
        known.push(k);
        present.push(store.present_images(target, t).await.expect("present"));
        let mut items = store.open_items(target, t).await.expect("open");
        items.sort_unstable_by_key(|i| i.item_id);
        open.push(items);
        held.push(store.held_deletions(target, t).await.expect("held"));
    }
    all.insert("known_images", format!("{known:?}"));
    all.insert("present_images", format!("{present:?}"));
    all.insert("open_items", format!("{open:?}"));
    all.insert("held_deletions", format!("{held:?}"));
    all.insert(
        "candidates",
        format!("{:?}", candidates(store, target).await),
    );
    all.insert(
        "image_counts",
        format!("{:?}", store.image_counts().await.expect("counts")),
    );
    all.insert(
        "sync_runs",
        format!("{:?}", store.recent_sync_runs(1000).await.expect("runs")),
    );
    all.insert(
        "job_runs",
        format!("{:?}", store.recent_job_runs(1000).await.expect("runs")),
    );
    all.insert(
        "batches",
        format!("{:?}", store.recent_batches(1000).await.expect("batches")),
    );
    all.insert(
        "target_facts",
        format!("{:?}", store.target_facts().await.expect("facts")),
    );
    all.insert(
        "submitted_total",
        format!("{:?}", store.submitted_total(target).await.expect("total")),
    );
    all
}

#[tokio::test]
#[ignore = "needs PostgreSQL: .ci/run starts one and sets HSS_SCAND_TEST_POSTGRES_URL"]
async fn db_copy_moves_everything_and_the_copy_reads_plans_and_scans_the_same() {
    // 50 of many due images submitted, so that the plan still has work, some of it in flight.
    let r = spawn_app(test_config(600), |c| {
        c.set("policy.max_images_per_run", "50")
    })
    .await;
    r.sync().await;
    assert_eq!(r.sim.delete_images("private_image", 7), 7);
    r.advance(Duration::from_secs(1));
    r.sync().await;
    let scanned = r.scan().await;
    assert_eq!(scanned.submitted(), 50, "{scanned:?}");
    let store = &r.app.store;
    let run = store
        .start_job_run(Job::Sync, "run-1", "schedule")
        .await
        .expect("start");
    store
        .finish_job_run(run, JobOutcome::Success, "synced", None)
        .await
        .expect("finish");
    store
        .record_skipped_run(Job::Scan, "run-2", "schedule")
        .await
        .expect("skipped");
    let in_flight = candidates(store, "prod")
        .await
        .iter()
        .filter(|c| c.in_flight)
        .count();
    assert_eq!(in_flight, 50, "submitted, not yet seen to finish");

    let db = TestDatabase::create(TEST_URL_VAR).await;
    let sqlite = r.config_file(|c| c);
    let copy = r.cli(&sqlite, &["db", "copy", "--to", &db.url]).await;
    assert_eq!(copy.code, Some(0), "{}\n{}", copy.stdout, copy.stderr);
    assert_redacted(&db.url, &[&copy.stdout, &copy.stderr]);
    let copied: BTreeMap<&str, u64> = copy
        .stdout
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            Some((fields.next()?, fields.next()?.parse().ok()?))
        })
        .collect();
    let images: usize = {
        let mut n = 0;
        for t in &TYPES {
            n += store.known_images("prod", t).await.expect("known").len();
        }
        n
    };
    assert_eq!(copied["images"], images as u64, "{}", copy.stdout);
    assert_eq!(copied["scan_items"], 50, "{}", copy.stdout);
    assert_eq!(copied["job_runs"], 2, "{}", copy.stdout);
    assert!(copied["sync_runs"] >= 4, "{}", copy.stdout);
    assert_eq!(copied["target_facts"], 1, "{}", copy.stdout);
    assert!(!copied.contains_key("leases"), "{}", copy.stdout);

    // The copy reads back as the original, row for row.
    let original = store::open(&r.app.settings.database.url, Clock::system())
        .await
        .expect("sqlite");
    let moved = store::open(&db.url, Clock::system())
        .await
        .expect("postgres");
    let (want, got) = (
        everything(&original, "prod").await,
        everything(&moved, "prod").await,
    );
    for (what, value) in &want {
        assert_eq!(&got[what], value, "{what} differs after the copy");
    }
    assert_eq!(moved.lease().await.expect("lease"), None, "not copied");
    original.close().await;
    moved.close().await;

    // And the commands see the same on both: the plan (in-flight images left out) and the
    // status, but for the lease.
    let pg = config_on(&r, "pg.toml", &db.url);
    let (plan_sqlite, plan_pg) = (
        json(&r.cli(&sqlite, &["plan", "--output", "json"]).await),
        json(&r.cli(&pg, &["plan", "--output", "json"]).await),
    );
    assert_eq!(plan_pg, plan_sqlite);
    assert_eq!(plan_pg.as_array().map(Vec::len), Some(50), "capped plan");
    // The lease differs by design, and the oldest scan's age is taken from the wall clock of
    // each command, which may cross a second between the two: `oldest_scan_at` is compared
    // exactly instead, and the ages only to within the few seconds the commands take.
    let without_clock = |mut v: serde_json::Value| {
        let status = v.as_object_mut().expect("an object");
        status.remove("leader");
        let mut ages = Vec::new();
        for coverage in status["coverage"].as_array_mut().expect("coverage") {
            let age = coverage
                .as_object_mut()
                .expect("a target's coverage")
                .remove("oldest_scan_age_seconds");
            ages.push(age.and_then(|a| a.as_i64()).expect("an age"));
        }
        (v, ages)
    };
    let ((status_sqlite, ages_sqlite), (status_pg, ages_pg)) = (
        without_clock(json(&r.cli(&sqlite, &["status", "--output", "json"]).await)),
        without_clock(json(&r.cli(&pg, &["status", "--output", "json"]).await)),
    );
    assert_eq!(status_pg, status_sqlite);
    assert_eq!(ages_pg.len(), ages_sqlite.len());
    for (pg, sqlite) in ages_pg.iter().zip(&ages_sqlite) {
        assert!(
            (0..=5).contains(&(pg - sqlite)),
            "{pg} s against {sqlite} s"
        );
    }

    // The copy carries on where SQLite left off: new rows get new ids, and nothing in flight
    // is paid for twice.
    let before = r.sim.stats();
    let once = r.cli(&pg, &["once"]).await;
    assert_eq!(once.code, Some(0), "{}\n{}", once.stdout, once.stderr);
    let after = r.sim.stats();
    assert_eq!(after.duplicate_submissions, 0);
    assert_eq!(after.images_submitted, before.images_submitted + 50);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: .ci/run starts one and sets HSS_SCAND_TEST_POSTGRES_URL"]
async fn db_copy_refuses_a_database_with_rows_and_names_the_table() {
    let r = spawn_app(test_config(40), |c| c).await;
    r.sync().await;
    let db = TestDatabase::create(TEST_URL_VAR).await;
    // A daemon already pointed at it recorded a run.
    let used = store::open(&db.url, Clock::system()).await.expect("open");
    used.start_job_run(Job::Sync, "run-1", "startup")
        .await
        .expect("a run");
    used.close().await;

    let sqlite = r.config_file(|c| c);
    // The target from the environment, as the help suggests for a URL with a password.
    let d = SimConfig::default();
    let refused = r
        .cli_with_env(
            &sqlite,
            &["db", "copy"],
            &[
                ("HSS_SCAND_DB_COPY_TO", db.url.as_str()),
                ("HUAWEICLOUD_SDK_AK", d.ak.as_str()),
                ("HUAWEICLOUD_SDK_SK", d.sk.as_str()),
            ],
        )
        .await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("table job_runs already has rows; db copy fills only an empty database"),
        "{}",
        refused.stderr
    );
    assert_redacted(&db.url, &[&refused.stdout, &refused.stderr]);
    let untouched = store::open(&db.url, Clock::system()).await.expect("open");
    assert!(untouched.image_counts().await.expect("counts").is_empty());
    assert_eq!(untouched.recent_job_runs(10).await.expect("runs").len(), 1);
    untouched.close().await;

    let not_postgres = r
        .cli(&sqlite, &["db", "copy", "--to", "mysql://u:pw@db/hss"])
        .await;
    assert_eq!(not_postgres.code, Some(1));
    assert!(
        not_postgres.stderr.contains("\"mysql\" is not PostgreSQL")
            && !not_postgres.stderr.contains(":pw@"),
        "{}",
        not_postgres.stderr
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: .ci/run starts one and sets HSS_SCAND_TEST_POSTGRES_URL"]
async fn once_on_postgres_submits_every_due_image_once() {
    let db = TestDatabase::create(TEST_URL_VAR).await;
    let r = spawn_app(test_config(500), |c| {
        c.set("database.url", &db.toml())
            .set("policy.batch_size", "60")
    })
    .await;
    // What is due, as the app on the same database sees it before the binary runs.
    r.sync().await;
    // The sync analyzed what it wrote: without statistics, the planner took the freshly
    // loaded table for one row and claimed every batch by walking the whole policy index.
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let (rows, estimated): (i64, f32) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM images), reltuples FROM pg_class WHERE relname = 'images'",
    )
    .fetch_one(&pool)
    .await
    .expect("statistics");
    pool.close().await;
    assert_eq!(estimated as i64, rows, "images analyzed after the sync");
    let due = r.plan().await.due.len();
    assert!(due > 100, "the account has work: {due}");

    let config = r.config_file(|c| c);
    let once = r.cli(&config, &["once"]).await;
    assert_eq!(once.code, Some(0), "{}\n{}", once.stdout, once.stderr);
    let stats = r.sim.stats();
    assert_eq!(stats.images_submitted as usize, due);
    assert_eq!(stats.duplicate_submissions, 0);
    assert_eq!(
        r.app.store.submitted_total("prod").await.expect("total"),
        stats.images_submitted
    );
    let again = r.cli(&config, &["once"]).await;
    assert_eq!(again.code, Some(0), "{}\n{}", again.stdout, again.stderr);
    assert_eq!(r.sim.stats().images_submitted, stats.images_submitted);
    r.sync().await;
    assert!(r.plan().await.due.is_empty(), "nothing left due");
}

/// A TCP proxy to the test server that can be cut (listener closed, every connection
/// dropped: the database is gone) and resumed on the same port.
struct Proxy {
    listen: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy = Proxy {
            listen: listener.local_addr().expect("address"),
            upstream,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), Arc::clone(&self.tasks));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().expect("lock").push(relay.abort_handle());
            }
        });
        self.tasks.lock().expect("lock").push(accept.abort_handle());
    }

    /// The database goes away: nothing listens, and every connection is cut.
    fn cut(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    /// The database is back, at the same address.
    async fn resume(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.listen).await {
                Ok(listener) => break listener,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("cannot listen on {} again: {err}", self.listen),
            }
        };
        self.serve(listener);
    }
}

/// `hss-scand run` with its stderr lines and its HTTP address.
struct Daemon {
    child: Child,
    address: String,
    log: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let d = SimConfig::default();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hss-scand"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_clear()
            .env("HUAWEICLOUD_SDK_AK", &d.ak)
            .env("HUAWEICLOUD_SDK_SK", &d.sk)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hss-scand runs");
        let stderr = child.stderr.take().expect("stderr");
        let (send, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let address = loop {
            assert!(
                Instant::now() < deadline,
                "never running:\n{}",
                seen.join("\n")
            );
            let Ok(line) = log.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            if line.contains("hss-scand is running") {
                break line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("address="))
                    .expect("the running line names the address")
                    .to_owned();
            }
            seen.push(line);
        };
        Daemon {
            child,
            address,
            log,
        }
    }

    async fn readyz(&mut self) -> u16 {
        match reqwest::get(format!("http://{}/readyz", self.address)).await {
            Ok(response) => response.status().as_u16(),
            Err(err) => {
                std::thread::sleep(Duration::from_secs(1));
                let exited = self.child.try_wait().expect("wait");
                let log: Vec<String> = self.log.try_iter().collect();
                panic!(
                    "/readyz did not answer ({err}); exited: {exited:?}; log:\n{}",
                    log.join("\n")
                );
            }
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Several threads: the proxy and the simulator live on this runtime while the test waits
// for the daemon's log on a blocking receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: .ci/run starts one and sets HSS_SCAND_TEST_POSTGRES_URL"]
async fn a_daemon_whose_database_goes_away_is_not_ready_and_keeps_running() {
    let db = TestDatabase::create(TEST_URL_VAR).await;
    let server = url::Url::parse(&db.url).expect("the URL parses");
    let upstream = format!(
        "{}:{}",
        server.host_str().expect("a host"),
        server.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    let sim = spawn_sim(test_config(20)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    ConfigText::new()
        .set(
            "database.url",
            &format!("{:?}", db.via(&proxy.listen.to_string())),
        )
        .endpoint(&sim.base_url())
        .target("prod", sim.project_id(), &["private_image"])
        .set("schedule.sync", r#""0 0 * * * *""#)
        .set("schedule.scan", r#""0 0 * * * *""#)
        .set("server.listen", r#""127.0.0.1:0""#)
        .set("log.level", r#""info""#)
        .write(&config);
    let mut daemon = Daemon::start(&config);
    assert_eq!(daemon.readyz().await, 200);

    proxy.cut();
    let asked = Instant::now();
    assert_eq!(daemon.readyz().await, 503, "the database is gone");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "/readyz took {:?}",
        asked.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(daemon.running(), "the daemon waits for its database");

    proxy.resume().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.readyz().await != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(daemon.running());
    let logged: Vec<String> = daemon.log.try_iter().collect();
    let secret = format!(":{}@", password(&db.url));
    assert!(
        !logged.iter().any(|l| l.contains(&secret)),
        "the password leaked:\n{}",
        logged.join("\n")
    );
}
