//! The Prometheus metrics of the daemon: one struct owns the registry and every metric, so
//! the names and labels are written down once, here. Label values known in advance
//! (targets, reasons, outcomes, jobs) are created at zero when the struct is built or the
//! configuration reloaded, so every series exists before its first event and `rate()` and
//! alerts see a 0 rather than nothing.
//!
//! No label takes an unbounded value: images are counted, never named.

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

use crate::domain::{DueReason, Job, JobOutcome, Severity, Target, TaskOutcome};
use crate::hss::transport::client::ApiObserver;
use crate::hss::transport::error::HssError;
use crate::pipeline::report::{BatchState, ScanReport, SyncReport};
use crate::status::StatusReport;
use crate::store::{SyncOutcome, TargetFacts};

const RELOAD_OUTCOMES: [&str; 2] = ["success", "failure"];

/// Seconds: an API call takes milliseconds to the request timeout (30 s by default).
const API_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Seconds: a sync of a small account takes a second, of a million images minutes.
const SYNC_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Seconds from an image's push (or first sighting) to our first submission of it: the next
/// scan run (minutes to the half hour of the default schedule), a budget-bound backlog
/// (hours to days), the backfill of an account's old images (weeks).
const TIME_TO_SUBMIT_BUCKETS: [f64; 12] = [
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0, 259200.0, 604800.0,
    2592000.0,
];
/// Seconds from submission to a finished scan: minutes to the scanning timeout (6 h).
const COMPLETION_BUCKETS: [f64; 10] = [
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0, 43200.0, 86400.0,
];

/// Every metric hss-scand exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    images: GaugeVec,
    images_due: GaugeVec,
    coverage_ratio: GaugeVec,
    oldest_scan_age: GaugeVec,
    images_at_risk: GaugeVec,
    images_with_malicious_files: GaugeVec,
    images_with_unsafe_settings: GaugeVec,
    time_to_submit: HistogramVec,
    sync_runs: IntCounterVec,
    sync_duration: HistogramVec,
    last_successful_sync: GaugeVec,
    scan_batches: IntCounterVec,
    images_submitted: IntCounterVec,
    scan_completion: HistogramVec,
    daily_budget_remaining: Gauge,
    api_requests: IntCounterVec,
    api_duration: HistogramVec,
    api_retries: IntCounterVec,
    job_runs: IntCounterVec,
    last_job_success: GaugeVec,
    config_reloads: IntCounterVec,
    api_fallbacks: IntCounterVec,
    api_in_use: GaugeVec,
    native_scan_policy_enabled: GaugeVec,
    pay_per_scan_enabled: GaugeVec,
    hss_reported_scans: GaugeVec,
    hss_free_scan_quota: GaugeVec,
    scan_tasks: IntCounterVec,
    deletions_held: IntCounterVec,
    incremental_missed: IntCounterVec,
    leader: IntGauge,
    lease_term: IntGauge,
    leader_changes: IntCounter,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// Builds and registers every metric, with the series of `targets` at zero.
    pub fn new(targets: &[Target]) -> Metrics {
        let registry = Registry::new();
        let gauge = |name, help, labels: &[&str]| {
            let m = GaugeVec::new(opts(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(m.clone()))
                .expect("registered once");
            m
        };
        let counter = |name, help, labels: &[&str]| {
            let m = IntCounterVec::new(opts(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(m.clone()))
                .expect("registered once");
            m
        };
        let histogram = |name, help, labels: &[&str], buckets: &[f64]| {
            let m = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(m.clone()))
                .expect("registered once");
            m
        };

        let build_info = IntGauge::with_opts(
            opts(
                "hss_scand_build_info",
                "Always 1; the version label says which hss-scand is running.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric");
        build_info.set(1);
        registry
            .register(Box::new(build_info))
            .expect("registered once");
        let daily_budget_remaining = Gauge::with_opts(opts(
            "hss_scand_daily_budget_remaining",
            "Scans the daily budget still allows today (UTC); +Inf when policy.daily_budget is 0 (no cap).",
        ))
        .expect("valid metric");
        registry
            .register(Box::new(daily_budget_remaining.clone()))
            .expect("registered once");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("registered once");

        let int_gauge = |name, help| {
            let m = IntGauge::with_opts(opts(name, help)).expect("valid metric");
            registry
                .register(Box::new(m.clone()))
                .expect("registered once");
            m
        };
        let leader = int_gauge(
            "hss_scand_leader",
            "1 while this replica holds the leader lease (it alone syncs and scans), else 0.",
        );
        let lease_term = int_gauge(
            "hss_scand_lease_term",
            "The leader lease's term as this replica last saw it; it grows with every new holder.",
        );
        let leader_changes = IntCounter::with_opts(opts(
            "hss_scand_leader_changes_total",
            "Times this replica saw the leader lease pass to a new holder (itself included).",
        ))
        .expect("valid metric");
        registry
            .register(Box::new(leader_changes.clone()))
            .expect("registered once");

        let metrics = Metrics {
            leader,
            lease_term,
            leader_changes,
            images: gauge(
                "hss_scand_images",
                "Present images in the inventory, by target, image type and HSS scan status.",
                &["target", "image_type", "scan_status"],
            ),
            images_due: gauge(
                "hss_scand_images_due",
                "Images due for a scan now, before max_images_per_run and the daily budget, by reason.",
                &["target", "reason"],
            ),
            coverage_ratio: gauge(
                "hss_scand_coverage_ratio",
                "Share (0..1) of a target's present, scannable, not skipped images whose last successful scan is within their rule's rescan_after (and of their current content); 1 with no such image.",
                &["target"],
            ),
            oldest_scan_age: gauge(
                "hss_scand_oldest_scan_age_seconds",
                "Age of the oldest last successful scan among a target's present, scannable, not skipped images; 0 when none has one.",
                &["target"],
            ),
            images_at_risk: gauge(
                "hss_scand_images_at_risk",
                "Present images by the severity_level HSS lists after their last scan (High, Medium, Low, Security).",
                &["target", "severity"],
            ),
            images_with_malicious_files: gauge(
                "hss_scand_images_with_malicious_files",
                "Present images in which their last scan found malicious files.",
                &["target"],
            ),
            images_with_unsafe_settings: gauge(
                "hss_scand_images_with_unsafe_settings",
                "Present images in which their last scan found unsafe settings.",
                &["target"],
            ),
            time_to_submit: histogram(
                "hss_scand_time_to_submit_seconds",
                "Time from an image's appearance (its latest_update_time, else when a sync first saw it) to our first submission of it, observed when HSS accepts the batch.",
                &["target"],
                &TIME_TO_SUBMIT_BUCKETS,
            ),
            sync_runs: counter(
                "hss_scand_sync_runs_total",
                "Inventory syncs of one target and image type, by outcome (complete, partial, failed).",
                &["target", "outcome"],
            ),
            sync_duration: histogram(
                "hss_scand_sync_duration_seconds",
                "How long the sync of one target (all its image types) took.",
                &["target"],
                &SYNC_BUCKETS,
            ),
            last_successful_sync: gauge(
                "hss_scand_last_successful_sync_timestamp_seconds",
                "When the last complete sync of a target finished (Unix time); 0 before the first.",
                &["target"],
            ),
            scan_batches: counter(
                "hss_scand_scan_batches_total",
                "Scan calls (batches), by outcome: sent (accepted), failed (refused), unknown (no answer; reconciled by later syncs), split (too large, resent in halves).",
                &["target", "outcome"],
            ),
            images_submitted: counter(
                "hss_scand_images_submitted_total",
                "Images in scan calls HSS accepted, by image type and why they were due.",
                &["target", "image_type", "reason"],
            ),
            scan_completion: histogram(
                "hss_scand_scan_completion_seconds",
                "Time from our submission of an image to a sync seeing its scan finished.",
                &["target"],
                &COMPLETION_BUCKETS,
            ),
            daily_budget_remaining,
            api_requests: counter(
                "hss_scand_api_requests_total",
                "HSS API attempts, by call and HTTP status (or timeout, connect, transport with no answer).",
                &["endpoint", "code"],
            ),
            api_duration: histogram(
                "hss_scand_api_request_duration_seconds",
                "How long one HSS API attempt took, answered or not.",
                &["endpoint"],
                &API_BUCKETS,
            ),
            api_retries: counter(
                "hss_scand_api_retries_total",
                "HSS API calls retried, by why (throttled, server_error, timeout, ...).",
                &["endpoint", "reason"],
            ),
            job_runs: counter(
                "hss_scand_job_runs_total",
                "Scheduled job runs, by outcome; skipped: a tick found the previous run still going.",
                &["job", "outcome"],
            ),
            last_job_success: gauge(
                "hss_scand_last_job_success_timestamp_seconds",
                "When a job last finished successfully (Unix time); 0 before the first.",
                &["job"],
            ),
            config_reloads: counter(
                "hss_scand_config_reloads_total",
                "Configuration reloads on SIGHUP, by outcome; a failed one leaves the old configuration running.",
                &["outcome"],
            ),
            api_fallbacks: counter(
                "hss_scand_api_fallbacks_total",
                "Times hss.api = auto found a target's region without HSS's current image API and used the deprecated one.",
                &["target"],
            ),
            api_in_use: gauge(
                "hss_scand_api_in_use",
                "1 for the HSS API generation a target's calls go through now (current, legacy, legacy_fallback, undecided).",
                &["target", "api"],
            ),
            native_scan_policy_enabled: gauge(
                "hss_scand_native_scan_policy_enabled",
                "1 when HSS's own periodic image scan is on for a target: images in its scope are scanned and billed twice.",
                &["target"],
            ),
            pay_per_scan_enabled: gauge(
                "hss_scand_pay_per_scan_enabled",
                "1 when HSS's pay-per-use image scanning is switched on for a target, 0 when off (scans are then refused).",
                &["target"],
            ),
            hss_reported_scans: gauge(
                "hss_scand_hss_reported_scans",
                "Successful registry-image scans HSS's pay-per-scan statistics count for a target (HSS does not say over which period).",
                &["target"],
            ),
            hss_free_scan_quota: gauge(
                "hss_scand_hss_free_scan_quota",
                "Free image scans HSS's pay-per-scan statistics report for a target.",
                &["target"],
            ),
            deletions_held: counter(
                "hss_scand_deletions_held_total",
                "Vanished images whose deletion a complete listing held back, because they were more than sync.max_delete_share of the present images.",
                &["target"],
            ),
            incremental_missed: counter(
                "hss_scand_incremental_missed_total",
                "Images a full listing found new or changed whose change the incremental listings since the previous full listing should have read and did not; with sync.incremental = auto the target then lists fully until restart.",
                &["target"],
            ),
            scan_tasks: counter(
                "hss_scand_scan_tasks_total",
                "HSS scan tasks made of our submissions, by how they ended: finished, stopped, timed_out, error.",
                &["target", "outcome"],
            ),
            registry,
        };
        metrics.daily_budget_remaining.set(f64::INFINITY);
        for endpoint in crate::hss::calls() {
            metrics.api_duration.with_label_values(&[endpoint]);
            for reason in HssError::KINDS {
                metrics.api_retries.with_label_values(&[endpoint, reason]);
            }
        }
        for job in Job::ALL {
            metrics.last_job_success.with_label_values(&[job.as_str()]);
            for outcome in JobOutcome::ALL {
                metrics
                    .job_runs
                    .with_label_values(&[job.as_str(), outcome.as_str()]);
            }
        }
        for outcome in RELOAD_OUTCOMES {
            metrics.config_reloads.with_label_values(&[outcome]);
        }
        metrics.add_targets(targets);
        metrics
    }

    /// What this replica knows of the leader lease: whether it holds it, and the term it saw.
    /// `changed`: the lease passed to a new holder since it last looked.
    pub fn set_lease(&self, leader: bool, term: i64, changed: bool) {
        self.leader.set(i64::from(leader));
        self.lease_term.set(term);
        if changed {
            self.leader_changes.inc();
        }
    }

    /// Creates the series of `targets` at zero (again after a reload: existing series keep
    /// their values).
    pub fn add_targets(&self, targets: &[Target]) {
        for target in targets {
            let t = target.name.as_str();
            self.sync_duration.with_label_values(&[t]);
            self.last_successful_sync.with_label_values(&[t]);
            self.scan_completion.with_label_values(&[t]);
            self.time_to_submit.with_label_values(&[t]);
            self.coverage_ratio.with_label_values(&[t]);
            self.oldest_scan_age.with_label_values(&[t]);
            for severity in Severity::ALL {
                self.images_at_risk
                    .with_label_values(&[t, severity.as_str()]);
            }
            self.images_with_malicious_files.with_label_values(&[t]);
            self.images_with_unsafe_settings.with_label_values(&[t]);
            for reason in DueReason::ALL {
                self.images_due.with_label_values(&[t, reason.as_str()]);
                for image_type in &target.image_types {
                    self.images_submitted.with_label_values(&[
                        t,
                        image_type.as_str(),
                        reason.as_str(),
                    ]);
                }
            }
            for outcome in SyncOutcome::ALL {
                self.sync_runs.with_label_values(&[t, outcome.as_str()]);
            }
            for state in BatchState::ALL {
                self.scan_batches.with_label_values(&[t, state.as_str()]);
            }
            self.api_fallbacks.with_label_values(&[t]);
            self.deletions_held.with_label_values(&[t]);
            self.incremental_missed.with_label_values(&[t]);
            self.native_scan_policy_enabled.with_label_values(&[t]);
            for outcome in TaskOutcome::ALL {
                self.scan_tasks.with_label_values(&[t, outcome.as_str()]);
            }
        }
    }

    /// What a target's project said about itself, from a survey or the database.
    pub fn set_target_facts(&self, facts: &TargetFacts) {
        let t = facts.target.as_str();
        for api in ["current", "legacy", "legacy_fallback", "undecided"] {
            self.api_in_use
                .with_label_values(&[t, api])
                .set(f64::from(u8::from(api == facts.api)));
        }
        let enabled = facts
            .native_scan_policy
            .as_ref()
            .is_some_and(|policy| policy.enabled);
        self.native_scan_policy_enabled
            .with_label_values(&[t])
            .set(f64::from(u8::from(enabled)));
        if let Some(billing) = &facts.pay_per_scan {
            if let Some(on) = billing.enabled {
                self.pay_per_scan_enabled
                    .with_label_values(&[t])
                    .set(f64::from(u8::from(on)));
            }
            if let Some(scans) = billing.repository_scans {
                self.hss_reported_scans
                    .with_label_values(&[t])
                    .set(scans as f64);
            }
            if let Some(free) = billing.free_quota {
                self.hss_free_scan_quota
                    .with_label_values(&[t])
                    .set(free as f64);
            }
        }
    }

    /// Scan tasks seen to end.
    pub fn record_tasks(&self, target: &str, ended: &[TaskOutcome]) {
        for outcome in ended {
            self.scan_tasks
                .with_label_values(&[target, outcome.as_str()])
                .inc();
        }
    }

    /// One sync run per target and type.
    pub fn record_sync(&self, reports: &[SyncReport], took: &[(String, Duration)]) {
        for report in reports {
            self.sync_runs
                .with_label_values(&[report.target.as_str(), report.outcome.as_str()])
                .inc();
            if report.counts.held > 0 {
                self.deletions_held
                    .with_label_values(&[report.target.as_str()])
                    .inc_by(report.counts.held as u64);
            }
            if report.listing.missed > 0 {
                self.incremental_missed
                    .with_label_values(&[report.target.as_str()])
                    .inc_by(report.listing.missed as u64);
            }
            if let Some(reconciled) = &report.reconciled {
                let histogram = self
                    .scan_completion
                    .with_label_values(&[report.target.as_str()]);
                for took in &reconciled.completion_times {
                    histogram.observe(took.as_secs_f64());
                }
            }
        }
        for (target, duration) in took {
            self.sync_duration
                .with_label_values(&[target.as_str()])
                .observe(duration.as_secs_f64());
        }
    }

    /// When each target last synced completely, in seconds since the epoch.
    pub fn set_last_successful_sync(&self, target: &str, at_ms: i64) {
        self.last_successful_sync
            .with_label_values(&[target])
            .set(at_ms as f64 / 1000.0);
    }

    /// The batches of one scan run.
    pub fn record_scan(&self, report: &ScanReport) {
        for batch in &report.batches {
            self.scan_batches
                .with_label_values(&[batch.target.as_str(), batch.state.as_str()])
                .inc();
            if batch.state == BatchState::Sent {
                let waited = self
                    .time_to_submit
                    .with_label_values(&[batch.target.as_str()]);
                for seconds in &batch.first_submitted_after {
                    waited.observe(f64::from(*seconds));
                }
                for (reason, n) in &batch.reasons {
                    self.images_submitted
                        .with_label_values(&[
                            batch.target.as_str(),
                            batch.image_type.as_str(),
                            reason.as_str(),
                        ])
                        .inc_by(*n);
                }
            }
        }
    }

    /// The inventory, due and budget gauges, from a status report.
    pub fn set_status(&self, status: &StatusReport) {
        // Reset first: a status that disappeared must not linger at its last count.
        self.images.reset();
        for count in &status.inventory {
            self.images
                .with_label_values(&[
                    count.target.as_str(),
                    count.image_type.as_str(),
                    count.scan_status.as_str(),
                ])
                .set(count.images as f64);
        }
        for (target, tally) in &status.policy_by_target {
            for reason in DueReason::ALL {
                let due = tally.due.get(&reason).copied().unwrap_or(0);
                self.images_due
                    .with_label_values(&[target.as_str(), reason.as_str()])
                    .set(due as f64);
            }
        }
        for coverage in &status.coverage {
            let t = coverage.target.as_str();
            self.coverage_ratio
                .with_label_values(&[t])
                .set(coverage.ratio);
            self.oldest_scan_age
                .with_label_values(&[t])
                .set(coverage.oldest_scan_age_seconds as f64);
        }
        for findings in &status.findings {
            let t = findings.target.as_str();
            for severity in Severity::ALL {
                let images = findings.by_severity.get(&severity).copied().unwrap_or(0);
                self.images_at_risk
                    .with_label_values(&[t, severity.as_str()])
                    .set(images as f64);
            }
            self.images_with_malicious_files
                .with_label_values(&[t])
                .set(findings.with_malicious_files as f64);
            self.images_with_unsafe_settings
                .with_label_values(&[t])
                .set(findings.with_unsafe_settings as f64);
        }
        self.daily_budget_remaining
            .set(status.budget.remaining.map_or(f64::INFINITY, |n| n as f64));
    }

    pub fn record_job(&self, job: Job, outcome: JobOutcome, finished_ms: i64) {
        self.job_runs
            .with_label_values(&[job.as_str(), outcome.as_str()])
            .inc();
        if outcome == JobOutcome::Success {
            self.set_last_job_success(job, finished_ms);
        }
    }

    pub fn set_last_job_success(&self, job: Job, at_ms: i64) {
        self.last_job_success
            .with_label_values(&[job.as_str()])
            .set(at_ms as f64 / 1000.0);
    }

    pub fn record_reload(&self, ok: bool) {
        self.config_reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on a metric family that is malformed, which the
        // registry refuses to register in the first place.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl ApiObserver for Metrics {
    fn attempt(&self, call: &'static str, code: &str, elapsed: Duration) {
        self.api_requests.with_label_values(&[call, code]).inc();
        self.api_duration
            .with_label_values(&[call])
            .observe(elapsed.as_secs_f64());
    }

    fn retry(&self, call: &'static str, reason: &'static str, _delay: Duration) {
        self.api_retries.with_label_values(&[call, reason]).inc();
    }

    fn fell_back(&self, target: &str) {
        self.api_fallbacks.with_label_values(&[target]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ImageType;

    fn target() -> Target {
        Target {
            name: "prod".into(),
            region: "r".into(),
            project_id: "p".into(),
            enterprise_project_id: String::new(),
            image_types: vec![ImageType::Private],
            trigger_swr_sync: false,
            api: None,
        }
    }

    #[test]
    fn series_known_in_advance_exist_at_zero_before_any_event() {
        let text = Metrics::new(&[target()]).render();
        for series in [
            "hss_scand_build_info{version=\"",
            "hss_scand_images_due{reason=\"stale\",target=\"prod\"} 0",
            "hss_scand_sync_runs_total{outcome=\"partial\",target=\"prod\"} 0",
            "hss_scand_scan_batches_total{outcome=\"unknown\",target=\"prod\"} 0",
            "hss_scand_images_submitted_total{image_type=\"private_image\",reason=\"never_scanned\",target=\"prod\"} 0",
            "hss_scand_job_runs_total{job=\"scan\",outcome=\"skipped\"} 0",
            "hss_scand_config_reloads_total{outcome=\"failure\"} 0",
            "hss_scand_api_retries_total{endpoint=\"list_swr_images\",reason=\"throttled\"} 0",
            "hss_scand_last_successful_sync_timestamp_seconds{target=\"prod\"} 0",
            // The prometheus crate writes +Inf as `inf`, which Prometheus parses (Go ParseFloat).
            "hss_scand_daily_budget_remaining inf",
            "hss_scand_api_request_duration_seconds_count{endpoint=\"batch_scan\"} 0",
            "hss_scand_scan_completion_seconds_count{target=\"prod\"} 0",
            "hss_scand_sync_duration_seconds_count{target=\"prod\"} 0",
            "hss_scand_incremental_missed_total{target=\"prod\"} 0",
            "hss_scand_images_due{reason=\"changed\",target=\"prod\"} 0",
            "hss_scand_coverage_ratio{target=\"prod\"} 0",
            "hss_scand_oldest_scan_age_seconds{target=\"prod\"} 0",
            "hss_scand_images_at_risk{severity=\"Security\",target=\"prod\"} 0",
            "hss_scand_images_at_risk{severity=\"High\",target=\"prod\"} 0",
            "hss_scand_images_with_malicious_files{target=\"prod\"} 0",
            "hss_scand_images_with_unsafe_settings{target=\"prod\"} 0",
            "hss_scand_time_to_submit_seconds_count{target=\"prod\"} 0",
        ] {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
    }

    #[test]
    fn api_attempts_and_retries_are_counted_by_endpoint() {
        let m = Metrics::new(&[]);
        m.attempt("batch_scan", "429", Duration::from_millis(20));
        m.attempt("batch_scan", "200", Duration::from_millis(30));
        m.retry("batch_scan", "throttled", Duration::from_secs(2));
        let text = m.render();
        assert!(
            text.contains("hss_scand_api_requests_total{code=\"429\",endpoint=\"batch_scan\"} 1")
        );
        assert!(
            text.contains(
                "hss_scand_api_request_duration_seconds_count{endpoint=\"batch_scan\"} 2"
            )
        );
        assert!(text.contains(
            "hss_scand_api_retries_total{endpoint=\"batch_scan\",reason=\"throttled\"} 1"
        ));
    }
}
