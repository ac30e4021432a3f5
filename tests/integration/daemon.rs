//! `hss-scand run` and `hss-scand demo` as processes: the notify protocol on a datagram
//! socket, the HTTP endpoints, reloads on SIGHUP, skipped ticks, and a SIGTERM in the middle
//! of a scan that leaves every batch with a recorded answer.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hss_scand::domain::Clock;
use hss_scand::sim::SimConfig;
use hss_scand::store;

use crate::support::config::ConfigText;
use crate::support::process::SimProcess;
use crate::support::sim::spawn_sim;

const WAIT: Duration = Duration::from_secs(90);

/// A running `hss-scand run` with its log lines, its notify socket and its address.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    /// Every notify message, read as it comes so the socket's queue never fills.
    notify: mpsc::Receiver<String>,
    address: String,
}

impl Daemon {
    fn start(dir: &Path, config: &Path) -> Daemon {
        let socket = dir.join("notify.sock");
        let listener = UnixDatagram::bind(&socket).expect("bind the notify socket");
        let (sent, notify) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = listener.recv(&mut buf) {
                if sent
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut child = Command::new(env!("CARGO_BIN_EXE_hss-scand"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_clear()
            .env("HUAWEICLOUD_SDK_AK", "sim-ak")
            .env("HUAWEICLOUD_SDK_SK", "sim-sk")
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", "2000000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hss-scand runs");
        let stderr = child.stderr.take().expect("stderr");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            child,
            lines,
            log: Vec::new(),
            notify,
            address: String::new(),
        };
        let running = daemon.wait_log(|l| l.contains("hss-scand is running"));
        daemon.address = running
            .split_whitespace()
            .find_map(|field| field.strip_prefix("address="))
            .expect("the running line names the address")
            .to_owned();
        daemon
    }

    /// Waits for a log line that satisfies `want`.
    fn wait_log(&mut self, want: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.log.iter().find(|l| want(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.log.push(line.clone());
                if want(&line) {
                    return line;
                }
            }
        }
        panic!("no such log line; the log was:\n{}", self.log.join("\n"));
    }

    /// Reads notify messages until one contains `want`; returns every message read.
    fn wait_notify(&self, want: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(message) = self.notify.recv_timeout(Duration::from_millis(200)) {
                let found = message.lines().any(|l| l == want);
                seen.push(message);
                if found {
                    return seen;
                }
            }
        }
        panic!("no {want} among the notify messages {seen:?}");
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "signal delivered");
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.address))
            .await
            .expect("the endpoint answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// Polls `/metrics` until `series` reaches at least `at_least`.
    async fn wait_metric(&self, series: &str, at_least: f64) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, text) = self.get("/metrics").await;
            if metric(&text, series).is_some_and(|v| v >= at_least) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{series} never reached {at_least}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "hss-scand did not exit");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one exact series (`name{labels}` as Prometheus prints it).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The daemon's configuration: a slow account (one call a second), the hourly sync only at
/// start-up, a scan every 2 s, as `adjust` changes it.
fn write_config(
    path: &Path,
    db: &Path,
    endpoint: &str,
    adjust: impl FnOnce(ConfigText) -> ConfigText,
) {
    adjust(
        ConfigText::new()
            .database(db)
            .endpoint(endpoint)
            .set("hss.requests_per_second", "1")
            .target("prod", "sim-project", &["private_image"])
            .set("schedule.sync", r#""0 0 * * * *""#)
            .set("schedule.scan", r#""*/2 * * * * *""#)
            .set("daemon.sync_on_start", "true")
            .set("daemon.shutdown_grace", r#""20s""#)
            .set("server.listen", r#""127.0.0.1:0""#)
            .set("log.level", r#""info""#),
    )
    .write(path);
}

/// Every `hss_scand_*` name the dashboard and the alert rules use.
fn names_used_by_deploy() -> BTreeSet<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut names = BTreeSet::new();
    for file in ["grafana/dashboard.json", "prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(root.join(file)).expect("a deploy file");
        for (at, _) in text.match_indices("hss_scand_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_reloads_skips_overlaps_and_stops_at_a_committed_step() {
    // A slow account: 1 call a second and batches of 20 make a scan of ~400 images last
    // about 20 s, so scan ticks every 2 s find it running and SIGTERM lands mid-scan.
    // The simulator as its own process: the daemon's calls then never wait on this test's
    // runtime, which blocks while it reads logs.
    let sim = SimProcess::start(&["--images", "600", "--queue-delay", "1h"], &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let db = dir.path().join("hss-scand.db");
    let good = |c: ConfigText| c.set("policy.batch_size", "20");
    write_config(&config, &db, &sim.base_url, good);
    let mut daemon = Daemon::start(dir.path(), &config);

    let first = daemon.wait_notify("READY=1");
    let ready = first.last().expect("the message with READY=1");
    assert!(
        ready.lines().any(|l| l == "STATUS=running"),
        "READY comes with its status: {ready:?}"
    );
    assert!(first.iter().all(|m| !m.contains("STOPPING=1")), "{first:?}");
    assert_eq!(daemon.get("/healthz").await.0, 200);
    assert_eq!(daemon.get("/readyz").await.0, 200);
    let (code, status) = daemon.get("/status").await;
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).expect("/status is JSON");
    assert!(status.get("inventory").is_some() && status.get("budget").is_some());
    daemon.wait_notify("WATCHDOG=1");

    // The start-up sync, then a scan that outlives the next ticks.
    daemon
        .wait_metric(
            "hss_scand_job_runs_total{job=\"sync\",outcome=\"success\"}",
            1.0,
        )
        .await;
    let text = daemon
        .wait_metric(
            "hss_scand_job_runs_total{job=\"scan\",outcome=\"skipped\"}",
            1.0,
        )
        .await;
    for name in names_used_by_deploy() {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            text.contains(&format!("# TYPE {base} ")),
            "deploy/ uses {name}, which hss-scand does not export"
        );
    }

    // An invalid file is refused, named, counted; the old configuration keeps running.
    write_config(&config, &db, &sim.base_url, |c| {
        c.set("policy.batch_size", "0")
    });
    daemon.signal(libc::SIGHUP);
    let around = daemon.wait_notify("READY=1");
    assert!(
        around.iter().any(|m| m.contains("RELOADING=1")),
        "{around:?}"
    );
    let rejected = daemon.wait_log(|l| l.contains("reload rejected"));
    assert!(rejected.contains("policy.batch_size"), "{rejected}");
    daemon
        .wait_metric("hss_scand_config_reloads_total{outcome=\"failure\"}", 1.0)
        .await;
    write_config(&config, &db, &sim.base_url, good);
    daemon.signal(libc::SIGHUP);
    daemon.wait_log(|l| l.contains("configuration reloaded"));
    daemon
        .wait_metric("hss_scand_config_reloads_total{outcome=\"success\"}", 1.0)
        .await;

    // SIGTERM while the scan that the skipped ticks found running goes on (it takes ~20 s;
    // its batches reach the metrics only when it ends).
    daemon.signal(libc::SIGTERM);
    daemon.wait_notify("STOPPING=1");
    assert_eq!(daemon.wait_exit(), Some(0), "{}", daemon.log.join("\n"));

    let store = store::open(&format!("sqlite://{}", db.display()), Clock::system())
        .await
        .expect("the database opens");
    let batches = store.recent_batches(10_000).await.expect("batches");
    let unanswered = batches
        .iter()
        .filter(|b| b.status == "pending" && b.answered_at.is_none())
        .count();
    assert_eq!(unanswered, 0, "a batch left without a recorded answer");
    let runs = store.recent_job_runs(10_000).await.expect("runs");
    assert!(
        runs.iter().all(|r| r.outcome != "running"),
        "a job run left running: {runs:?}"
    );
    let stopped = runs
        .iter()
        .filter(|r| {
            r.job == "scan"
                && r.summary
                    .as_deref()
                    .is_some_and(|s| s.contains("shutting down"))
        })
        .count();
    daemon.log.extend(daemon.lines.try_iter());
    assert_eq!(
        stopped,
        1,
        "the scan stopped between batches: {runs:?}\n{}",
        daemon.log.join("\n")
    );
    assert!(
        runs.iter().any(|r| r.outcome == "skipped"),
        "skipped ticks are recorded"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (Debian's prometheus package); .ci/run installs it and runs this"]
async fn promtool_accepts_a_real_scrape() {
    let sim = spawn_sim(SimConfig {
        images: 200,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    write_config(
        &config,
        &dir.path().join("hss-scand.db"),
        &sim.base_url(),
        |c| c,
    );
    let daemon = Daemon::start(dir.path(), &config);
    let text = daemon
        .wait_metric(
            "hss_scand_job_runs_total{job=\"sync\",outcome=\"success\"}",
            1.0,
        )
        .await;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the scrape");
    let output = promtool.wait_with_output().expect("promtool finishes");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_needs_nothing_prints_progress_and_stops_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hss-scand"))
        .arg("demo")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hss-scand demo runs");
    let stdout = child.stdout.take().expect("stdout");
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !seen.iter().any(|l: &String| l.contains("sync finished")) {
        assert!(Instant::now() < deadline, "no progress line: {seen:?}");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let metrics_url = seen
        .iter()
        .find_map(|l| l.trim().strip_prefix("metrics: "))
        .expect("the demo says where /metrics is")
        .to_owned();
    let text = reqwest::get(&metrics_url)
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("a body");
    assert!(text.contains("hss_scand_images{"), "{text}");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().expect("the demo exits");
    assert_eq!(status.code(), Some(0));
}
