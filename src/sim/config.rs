//! What a simulator is started with: the synthetic account, the accepted credentials, the
//! scan lifecycle's pace, the wire quirks to imitate and the faults to inject.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::faults::Faults;
use super::policy::ScanPolicy;

/// Everything [`spawn`](super::spawn) needs. `Debug` hides the secret key and token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Images in the initial account, over all image types.
    pub images: usize,
    /// Seeds the account (names, statuses, digests) and the random faults.
    pub seed: u64,
    pub ak: String,
    pub sk: String,
    /// The only project id the API answers under; others get the gateway's 404.
    pub project_id: String,
    /// When set, requests signed with `ak` must carry `X-Security-Token` equal to it.
    pub security_token: Option<String>,
    pub faults: Faults,
    pub lifecycle: Lifecycle,
    /// Send `id`, `image_size`, `latest_scan_time` and `latest_update_time` as numeric strings.
    pub numbers_as_strings: bool,
    /// Every Nth image (0 = none) gets the seed page's example junk: `"image_size": "1000 (Bytes)"`
    /// and `"id": "111 (example)"`.
    pub junk_number_every: usize,
    /// Every Nth image (0 = none) reports the unknown scan status `quarantined`.
    pub unknown_status_every: usize,
    /// Images a third-party registry brings when it is connected (`add_registry`).
    pub registry_images: usize,
    /// Third-party registries connected before the start (`harbor-01`, `jfrog-02`, …), each
    /// with `registry_images` images that have a scan history.
    pub third_party_registries: usize,
    /// Share (0..=1) of images, SWR and third-party, that are multi-architecture.
    pub multi_arch_share: f64,
    /// Share (0..=1) of shared images whose sharing has expired.
    pub expired_shared_share: f64,
    /// Most `image_info` items one create-scan-task call may carry; `None`: no limit (HSS
    /// documents none). More answers 400 `HSS.0006`.
    pub max_scan_task_items: Option<usize>,
    /// The `image_pay_per_scan` switch: scan tasks are refused while it is off.
    pub pay_per_scan: bool,
    /// The deprecated calls answer as the gateway does for an API that does not exist.
    pub deprecated_apis_removed: bool,
    /// The current calls answer that way (a region that does not have them yet).
    pub current_apis_missing: bool,
    /// HSS's own periodic scan policy (off by default).
    pub scan_policy: ScanPolicy,
    /// Images changed per hour by a background churn (0 = none), split over new pushes,
    /// re-pushes, deletions and HSS's own rescans.
    pub churn_per_hour: u64,
    /// The simulator's clock stands still from the start and moves only when told
    /// (`SimHandle::advance_clock`, `POST /sim/clock`), so that a daemon on a manual clock
    /// that is moved by the same amounts sees the same time.
    pub manual_clock: bool,
    /// How far a request's `X-Sdk-Date` may be from the server clock (HSS: 15 minutes): how
    /// long a signed request can still be sent.
    pub max_clock_skew: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            images: 1000,
            seed: 1,
            ak: "sim-ak".into(),
            sk: "sim-sk".into(),
            project_id: "sim-project".into(),
            security_token: None,
            faults: Faults::default(),
            lifecycle: Lifecycle::default(),
            numbers_as_strings: false,
            junk_number_every: 0,
            unknown_status_every: 0,
            registry_images: 300,
            third_party_registries: 0,
            multi_arch_share: 0.02,
            expired_shared_share: 0.05,
            max_scan_task_items: None,
            pay_per_scan: true,
            deprecated_apis_removed: false,
            current_apis_missing: false,
            scan_policy: ScanPolicy::default(),
            churn_per_hour: 0,
            manual_clock: false,
            max_clock_skew: super::auth::MAX_CLOCK_SKEW,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("images", &self.images)
            .field("seed", &self.seed)
            .field("ak", &self.ak)
            .field("sk", &"<redacted>")
            .field("project_id", &self.project_id)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("faults", &self.faults)
            .field("lifecycle", &self.lifecycle)
            .field("numbers_as_strings", &self.numbers_as_strings)
            .field("junk_number_every", &self.junk_number_every)
            .field("unknown_status_every", &self.unknown_status_every)
            .field("registry_images", &self.registry_images)
            .field("third_party_registries", &self.third_party_registries)
            .field("multi_arch_share", &self.multi_arch_share)
            .field("expired_shared_share", &self.expired_shared_share)
            .field("max_scan_task_items", &self.max_scan_task_items)
            .field("pay_per_scan", &self.pay_per_scan)
            .field("deprecated_apis_removed", &self.deprecated_apis_removed)
            .field("current_apis_missing", &self.current_apis_missing)
            .field("scan_policy", &self.scan_policy)
            .field("churn_per_hour", &self.churn_per_hour)
            .field("manual_clock", &self.manual_clock)
            .field("max_clock_skew", &self.max_clock_skew)
            .finish()
    }
}

/// How a submitted image moves: `waiting_for_scan` for `queue_delay`, then `scanning` for
/// `scan_duration`, then `success`, or `failed` for a `failure_rate` share of submissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lifecycle {
    #[serde(with = "duration_text")]
    pub queue_delay: Duration,
    #[serde(with = "duration_text")]
    pub scan_duration: Duration,
    pub failure_rate: f64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            queue_delay: Duration::from_secs(2),
            scan_duration: Duration::from_secs(5),
            failure_rate: 0.05,
        }
    }
}

/// Durations on the admin API as humantime text (`"250ms"`, `"2s"`); a bare number is
/// taken as milliseconds.
pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Millis(u64),
        Human(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Text::deserialize(d)? {
            Text::Millis(ms) => Ok(Duration::from_millis(ms)),
            Text::Human(text) => humantime::parse_duration(&text).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_key() {
        let config = SimConfig {
            sk: "very-secret".into(),
            security_token: Some("tok-secret".into()),
            ..SimConfig::default()
        };
        let text = format!("{config:?}");
        assert!(
            !text.contains("very-secret") && !text.contains("tok-secret"),
            "{text}"
        );
    }

    #[test]
    fn lifecycle_durations_are_text_or_millis() {
        let l: Lifecycle =
            serde_json::from_str(r#"{"queue_delay":"1s","scan_duration":250}"#).unwrap();
        assert_eq!(l.queue_delay, Duration::from_secs(1));
        assert_eq!(l.scan_duration, Duration::from_millis(250));
        assert_eq!(l.failure_rate, 0.05);
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["scan_duration"], "250ms");
    }
}
