//! The world at its most hostile: two processes on one database and one account, listings
//! that lie, answers that trickle, names that carry terminal escapes, secrets in URLs,
//! umasks that share, clients that hold connections open. Each test reproduces one class of
//! failure found by an adversarial review and proves its mechanism holds.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hss_scand::domain::ImageType;
use hss_scand::hss::transport::client::{ClientOptions, HssClient, rate_limiter};
use hss_scand::hss::transport::credentials::{CredentialProvider, Credentials};
use hss_scand::sim::{FaultKind, Identity, ScriptedFault, SimConfig};
use hss_scand::store::SyncOutcome;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::config::ConfigText;
use crate::support::rig::{TestApp, spawn_app};
use crate::support::sim::test_config;

const WAIT: Duration = Duration::from_secs(90);

/// The API generation a test runs through.
#[derive(Debug, Clone, Copy)]
enum Api {
    Legacy,
    Current,
}

impl Api {
    const BOTH: [Api; 2] = [Api::Legacy, Api::Current];

    fn config(self, config: ConfigText) -> ConfigText {
        match self {
            Api::Legacy => config.set("hss.api", r#""legacy""#),
            Api::Current => config.set("hss.api", r#""current""#),
        }
    }

    /// The simulator's name of the call that lists SWR images.
    fn list_call(self) -> &'static str {
        match self {
            Api::Legacy => "list_swr_images",
            Api::Current => "list_registry_images",
        }
    }
}

/// Present images per type of target `prod`.
async fn present(r: &TestApp) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for t in [ImageType::Private, ImageType::Shared] {
        let images = r
            .app
            .store
            .present_images("prod", &t)
            .await
            .expect("present");
        counts.insert(t.as_str().to_owned(), images.len());
    }
    counts
}

// --- 2. A listing that cannot be trusted is partial, and deletes nothing -------------------

/// One hostile listing after a good one: partial, nothing deleted, the requests bounded.
async fn a_hostile_listing_deletes_nothing(api: Api, fault: FaultKind) {
    let r = spawn_app(test_config(600), |c| {
        // The valve off: the listing's own checks must hold on their own.
        // Pages of 25: every type lists several, so that a server ignoring `offset` shows.
        api.config(c)
            .set("hss.page_size", "25")
            .set("sync.max_delete_share", "1.0")
    })
    .await;
    let first = r.sync().await;
    assert!(
        first.iter().all(|s| s.outcome == SyncOutcome::Complete),
        "{first:?}"
    );
    let before = present(&r).await;
    let pages_of_a_whole_listing: u64 = before.values().map(|n| *n as u64 / 25 + 1).sum();
    let requests = |r: &TestApp| {
        r.sim
            .stats()
            .requests
            .get(api.list_call())
            .copied()
            .unwrap_or(0)
    };
    let requests_before = requests(&r);

    r.sim.fail_next(ScriptedFault::new(
        Some(api.list_call()),
        1_000,
        fault.clone(),
    ));
    let hostile = r.sync().await;
    for report in &hostile {
        assert_eq!(
            report.outcome,
            SyncOutcome::Partial,
            "{api:?} {fault:?}: {report:?}"
        );
        assert_eq!(report.counts.deleted, 0, "{api:?} {fault:?}: {report:?}");
        assert!(report.error.is_some(), "a partial listing says why");
    }
    assert_eq!(present(&r).await, before, "{api:?} {fault:?}");
    // A few pages are fetched ahead of the one being written, and may be past the end.
    let spent = requests(&r) - requests_before;
    assert!(
        spent <= 2 * pages_of_a_whole_listing,
        "{api:?} {fault:?}: {spent} list requests for {pages_of_a_whole_listing} pages"
    );
}

#[tokio::test]
async fn a_server_that_ignores_offset_deletes_nothing() {
    for api in Api::BOTH {
        a_hostile_listing_deletes_nothing(api, FaultKind::IgnoreOffset).await;
    }
}

#[tokio::test]
async fn a_page_with_an_image_twice_deletes_nothing() {
    for api in Api::BOTH {
        a_hostile_listing_deletes_nothing(api, FaultKind::DuplicateImage).await;
    }
}

#[tokio::test]
async fn records_without_their_names_delete_nothing() {
    for api in Api::BOTH {
        let fault = FaultKind::MissingFields {
            fields: Identity::Names,
        };
        a_hostile_listing_deletes_nothing(api, fault).await;
    }
}

#[tokio::test]
async fn records_of_another_type_delete_nothing() {
    for api in Api::BOTH {
        a_hostile_listing_deletes_nothing(api, FaultKind::WrongType).await;
    }
}

#[tokio::test]
async fn a_total_of_a_trillion_stops_at_the_short_page_and_deletes_nothing() {
    for api in Api::BOTH {
        let fault = FaultKind::HugeTotal {
            total_num: 1_000_000_000_000,
        };
        a_hostile_listing_deletes_nothing(api, fault).await;
    }
}

#[tokio::test]
async fn losing_more_than_the_allowed_share_at_once_waits_for_a_second_listing() {
    let r = spawn_app(test_config(600), |c| c.set("hss.page_size", "100")).await;
    r.sync().await;
    let before = present(&r).await;
    let private = before["private_image"];
    // 30 % of the private images vanish: more than the default 20 % share.
    let gone = r.sim.delete_images("private_image", private * 3 / 10);
    assert!(gone * 5 > private, "{gone} of {private}");

    let first = r.sync().await;
    let report = first
        .iter()
        .find(|s| s.image_type == ImageType::Private)
        .expect("a private report");
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(report.counts.deleted, 0, "{report:?}");
    assert_eq!(report.counts.held, gone as i64, "{report:?}");
    assert!(
        report.to_string().contains("deletions held back"),
        "{report}"
    );
    assert_eq!(present(&r).await, before, "nothing deleted yet");

    // The next complete listing sees them still gone: the deletions are confirmed.
    let second = r.sync().await;
    let report = second
        .iter()
        .find(|s| s.image_type == ImageType::Private)
        .expect("a private report");
    assert_eq!(report.counts.deleted, gone as i64, "{report:?}");
    assert_eq!(report.counts.held, 0, "{report:?}");
    assert_eq!(present(&r).await["private_image"], private - gone);
}

#[tokio::test]
async fn held_deletions_of_images_that_come_back_are_forgotten() {
    let r = spawn_app(test_config(600), |c| c.set("hss.page_size", "100")).await;
    r.sync().await;
    let before = present(&r).await;
    let gone = r
        .sim
        .delete_images("private_image", before["private_image"] / 2);
    let first = r.sync().await;
    assert!(
        first.iter().any(|s| s.counts.held == gone as i64),
        "{first:?}"
    );
    // A listing glitch, not a loss: the images are back, and nothing is ever deleted.
    r.sim.restore_images("private_image");
    let second = r.sync().await;
    assert!(
        second
            .iter()
            .all(|s| s.counts.deleted == 0 && s.counts.held == 0),
        "{second:?}"
    );
    assert_eq!(present(&r).await, before);
}

// --- 1. Two processes never submit the same image -------------------------------------------

/// An account whose scans end at once, with batches small enough that two processes race
/// through many of them.
fn racing_account() -> SimConfig {
    SimConfig {
        // Every image submittable, so that "every due image submitted once" is exact.
        multi_arch_share: 0.0,
        expired_shared_share: 0.0,
        ..test_config(1_500)
    }
}

fn racing_config(api: Api, c: ConfigText) -> ConfigText {
    api.config(c).set("policy.batch_size", "25")
}

/// The images a plan made now would submit.
async fn due_now(r: &TestApp) -> u64 {
    r.sync().await;
    r.plan().await.due.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_onces_together_submit_every_due_image_once() {
    for trial in 0..3 {
        let api = Api::BOTH[trial % 2];
        let r = spawn_app(racing_account(), |c| racing_config(api, c)).await;
        let due = due_now(&r).await;
        assert!(due > 1_000, "{due}");
        let config = r.config_file(|c| c);
        let (a, b) = tokio::join!(r.cli(&config, &["once"]), r.cli(&config, &["once"]));
        // The second either finds the first's lease and does nothing (75, saying so), or
        // starts after the first ended and finds nothing due.
        for run in [&a, &b] {
            match run.code {
                Some(0) => {}
                Some(75) => assert!(
                    run.stderr.contains("the leader lease is held by"),
                    "{}",
                    run.stderr
                ),
                other => panic!("trial {trial} {api:?}: exit {other:?}: {}", run.stderr),
            }
        }
        assert!(a.code == Some(0) || b.code == Some(0), "one of them ran");
        let stats = r.sim.stats();
        assert_eq!(stats.duplicate_submissions, 0, "trial {trial} {api:?}");
        assert_eq!(stats.images_submitted, due, "trial {trial} {api:?}");
    }
}

/// `hss-scand run` as a child process, with a scan every second.
fn start_daemon(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hss-scand"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env_clear()
        .env("HUAWEICLOUD_SDK_AK", "sim-ak")
        .env("HUAWEICLOUD_SDK_SK", "sim-sk")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hss-scand runs")
}

fn daemon_settings(c: ConfigText) -> ConfigText {
    c.set("schedule.scan", r#""* * * * * *""#)
        .set("daemon.sync_on_start", "true")
        .set("server.listen", r#""127.0.0.1:0""#)
}

/// SIGTERM, then the exit: a daemon stops after its current step.
fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_beside_the_daemon_submits_every_due_image_once() {
    for trial in 0..2 {
        let api = Api::BOTH[trial % 2];
        let r = spawn_app(racing_account(), |c| racing_config(api, c)).await;
        let due = due_now(&r).await;
        let config = r.config_file(daemon_settings);
        let daemon = start_daemon(&config);
        // The daemon usually holds the lease first (75, and nothing done); if not, the daemon
        // stands by until the once gives it up.
        let once = r.cli(&config, &["once"]).await;
        assert!(
            matches!(once.code, Some(0 | 75)),
            "trial {trial} {api:?}: {}",
            once.stderr
        );
        let deadline = Instant::now() + WAIT;
        while r.sim.stats().images_submitted < due && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::task::spawn_blocking(move || stop(daemon))
            .await
            .expect("stopped");
        let stats = r.sim.stats();
        assert_eq!(stats.duplicate_submissions, 0, "trial {trial} {api:?}");
        assert_eq!(stats.images_submitted, due, "trial {trial} {api:?}");
    }
}

// --- 3. Every wait is bounded ---------------------------------------------------------------

#[tokio::test]
async fn an_answer_that_trickles_ends_at_the_request_timeout() {
    let r = spawn_app(test_config(300), |c| {
        c.set("hss.request_timeout", r#""1s""#)
            .set("hss.max_retries", "0")
            .set("hss.api", r#""legacy""#)
    })
    .await;
    r.sim.fail_next(ScriptedFault::new(
        Some("list_swr_images"),
        100,
        FaultKind::Trickle {
            bytes: 1,
            interval_ms: 200,
        },
    ));
    // A 200-image page at a byte every 200 ms would take hours.
    let reports = tokio::time::timeout(WAIT, r.sync())
        .await
        .expect("the sync ends");
    for report in &reports {
        assert_eq!(report.outcome, SyncOutcome::Failed, "{report:?}");
        let error = report.error.as_deref().unwrap_or_default();
        assert!(error.contains("no answer from HSS within 1s"), "{error}");
    }
}

/// A metadata service that answers every request with a header, then a byte every 200 ms,
/// forever.
async fn trickling_metadata() -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0_u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if stream.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url::Url::parse(&format!("http://{address}")).expect("url")
}

/// A registry list that claims a trillion registries and answers every page full: with
/// fresh ids at each offset, or (`ignore_offset`) the first page again. Counts its requests.
async fn endless_registries(ignore_offset: bool) -> (url::Url, Arc<AtomicU64>) {
    let requests = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&requests);
    let app = axum::Router::new().fallback(
        move |query: axum::extract::Query<BTreeMap<String, String>>| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let offset: u64 = query
                    .get("offset")
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(0);
                let first = if ignore_offset { 0 } else { offset };
                let page: Vec<serde_json::Value> = (first..first + 200)
                    .map(|i| {
                        serde_json::json!({
                            "id": format!("reg-{i}"),
                            "registry_name": format!("harbor-{i}"),
                            "registry_type": "Harbor",
                        })
                    })
                    .collect();
                axum::Json(serde_json::json!({
                    "total_num": 1_000_000_000_000_u64,
                    "data_list": page,
                }))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = url::Url::parse(&format!("http://{address}")).expect("url");
    (url, requests)
}

#[tokio::test]
async fn a_registry_list_that_never_ends_is_stopped_with_a_reason() {
    for (ignore_offset, at_most, reason) in [
        (false, 6, "more than 1000 registries"),
        (true, 2, "ignore offset"),
    ] {
        let (url, requests) = endless_registries(ignore_offset).await;
        let options = ClientOptions {
            endpoint: url,
            region: "ap-southeast-1".into(),
            project_id: "p".into(),
            enterprise_project_id: String::new(),
            request_timeout: Duration::from_secs(5),
            max_retries: 0,
            user_agent: "hss-scand-tests".into(),
        };
        let keys = CredentialProvider::fixed(Credentials::new("ak", "sk", None));
        let limiter = rate_limiter(NonZeroU32::new(1_000).expect("non-zero"));
        let client = HssClient::new(options, keys, limiter).expect("client");
        let err = hss_scand::hss::registries::list(&client)
            .await
            .expect_err("an endless listing is refused");
        assert!(err.to_string().contains(reason), "{err}");
        let sent = requests.load(Ordering::SeqCst);
        assert!(sent <= at_most, "{sent} requests");
    }
}

#[tokio::test(start_paused = true)]
async fn a_metadata_service_that_trickles_is_given_up_on() {
    let provider = CredentialProvider::metadata(&trickling_metadata().await);
    // Before: every byte reset the 3 s read timeout, and the answer never ended.
    let answer = tokio::time::timeout(Duration::from_secs(300), provider.current())
        .await
        .expect("the metadata flow has a deadline");
    let err = answer.expect_err("no keys from a trickle");
    assert!(err.to_string().contains("securitykey"), "{err}");
}

// --- 4. Two commands starting on a new database both work ----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_commands_starting_on_a_new_database_both_work() {
    let r = spawn_app(test_config(10), |c| c).await;
    for trial in 0..5 {
        let db = r.dir.path().join(format!("new-{trial}.db"));
        let config = r.config_file(|c| c.database(&db));
        let (a, b) = tokio::join!(r.cli(&config, &["status"]), r.cli(&config, &["plan"]));
        assert_eq!(a.code, Some(0), "trial {trial}: {}", a.stderr);
        assert_eq!(b.code, Some(0), "trial {trial}: {}", b.stderr);
    }
}

// --- 6. Output is safe to print -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_terminal_escapes_are_shown_not_obeyed() {
    let r = spawn_app(test_config(20), |c| c).await;
    r.sync().await;
    let hostile = "evil\u{1b}[2J\u{1b}]0;pwned\u{7}\rname";
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        r.dir.path().join("state.db").display()
    ))
    .await
    .expect("the database");
    sqlx::query("UPDATE images SET image_name = ? || id")
        .bind(hostile)
        .execute(&pool)
        .await
        .expect("renamed");
    pool.close().await;
    let config = r.config_file(|c| c);

    let table = r.cli(&config, &["plan"]).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    assert!(
        !table.stdout.contains(['\u{1b}', '\u{7}', '\r']),
        "{:?}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains(r"/evil\u{1b}[2J\u{1b}]0;pwned\u{7}\u{d}name"),
        "{}",
        table.stdout
    );

    let json = r.cli(&config, &["plan", "--output", "json"]).await;
    assert_eq!(json.code, Some(0), "{}", json.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).expect("JSON");
    assert!(
        rows.iter().all(|row| row["image_name"]
            .as_str()
            .is_some_and(|name| name.starts_with(hostile))),
        "JSON keeps the name exactly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_database_url_stays_out_of_every_error() {
    let r = spawn_app(test_config(10), |c| c).await;
    for url in [
        "sqlite://admin:hunter2-secret@/nonexistent-dir/x.db",
        "sqlite:///nonexistent-dir/x.db?password=hunter2-secret",
    ] {
        let config = r.config_file(|c| c.set("database.url", &format!("\"{url}\"")));
        for command in [&["plan"][..], &["status"], &["once"]] {
            let outcome = r.cli(&config, command).await;
            assert_ne!(outcome.code, Some(0), "{command:?} {url}");
            assert!(
                outcome.stderr.contains("[redacted]"),
                "the URL is named, redacted: {}",
                outcome.stderr
            );
            assert!(
                !outcome.stderr.contains("hunter2") && !outcome.stdout.contains("hunter2"),
                "{command:?}: {}",
                outcome.stderr
            );
            assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
        }
    }
}

// --- 7. Files and endpoints -----------------------------------------------------------------

/// The address in `run`'s "hss-scand is running" line, read from the log file.
fn daemon_address(log: &Path) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(address) = text
            .lines()
            .filter(|l| l.contains("hss-scand is running"))
            .find_map(|l| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix("address="))
            })
        {
            return address.to_owned();
        }
        assert!(Instant::now() < deadline, "the daemon never ran:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(soft, hard)` "Max open files" of a process, from `/proc/PID/limits`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("an open-files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().expect("soft").to_owned(),
        fields.next().expect("hard").to_owned(),
    )
}

/// Raises this test process's own soft limit of open files to its hard limit (it holds 1,100
/// connections).
fn raise_own_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed by pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit);
    }
    limit.rlim_cur
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_its_files_private_and_answers_probes_past_1100_idle_clients() {
    let r = spawn_app(test_config(50), |c| c).await;
    // A database the rig has not opened: the daemon creates it.
    let db = r.dir.path().join("daemon.db");
    let log = r.dir.path().join("daemon.log");
    let config = r.config_file(|c| daemon_settings(c).database(&db));
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_hss-scand"));
    command
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env_clear()
        .env("HUAWEICLOUD_SDK_AK", "sim-ak")
        .env("HUAWEICLOUD_SDK_SK", "sim-sk")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    // SAFETY: umask and setrlimit are async-signal-safe and touch only the child.
    unsafe {
        command.pre_exec(|| {
            // The most permissive umask, and the usual 1,024 open files, soft below hard.
            libc::umask(0);
            let limit = libc::rlimit {
                rlim_cur: 512,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let daemon = command.spawn().expect("hss-scand runs");
    let pid = daemon.id();
    let address = tokio::task::spawn_blocking({
        let log = log.clone();
        move || daemon_address(&log)
    })
    .await
    .expect("address");

    assert_eq!(
        open_file_limits(pid),
        ("1024".to_owned(), "1024".to_owned()),
        "the soft limit was raised to the hard one"
    );

    // The database and its WAL and SHM files, owner only, whatever the umask.
    let deadline = Instant::now() + WAIT;
    let files: Vec<_> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| r.dir.path().join(format!("daemon.db{suffix}")))
        .collect();
    while !files.iter().all(|f| f.exists()) {
        assert!(
            Instant::now() < deadline,
            "the daemon never opened {files:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for file in &files {
        let mode = std::fs::metadata(file)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
    }

    // More idle connections than the daemon may open files: the probes still answer.
    assert!(
        raise_own_open_file_limit() > 1_300,
        "this test holds 1,100 sockets"
    );
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        idle.push(
            tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect"),
        );
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    for _ in 0..3 {
        let answer = client
            .get(format!("http://{address}/healthz"))
            .send()
            .await
            .expect("/healthz answers past 1,100 idle connections");
        assert_eq!(answer.status().as_u16(), 200);
    }
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count();
    assert!(open < 400, "the daemon holds {open} descriptors");
    drop(idle);
    tokio::task::spawn_blocking(move || stop(daemon))
        .await
        .expect("stopped");
}

#[test]
fn a_proxy_path_in_the_endpoint_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    ConfigText::new()
        .database(&dir.path().join("x.db"))
        .endpoint("https://proxy.example.com/hss")
        .target("prod", "p", &["private_image"])
        .write(&config);
    let outcome = crate::support::cli::config_check(&config, &[]);
    assert_eq!(outcome.code, Some(78), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("hss.endpoint"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("path"), "{}", outcome.stderr);
}
