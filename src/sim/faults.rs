//! Injected faults. Scripted faults ("the next N requests to E answer 503") are for tests,
//! because they are deterministic; the rates, drawn from an RNG seeded by the config, are for
//! the demo and benchmarks.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::config::duration_text;
use super::endpoint::Endpoint;
use super::error::ApiError;
use super::lock;
use super::page_faults::{Identity, PageFault};
use super::tasks::Ending;

/// Faults applied at random to every API request. The default injects nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added before every API answer.
    #[serde(with = "duration_text")]
    pub latency: Duration,
    /// Share of requests answered 500 or 503.
    pub error_rate: f64,
    /// Share of requests answered 429 `APIG.0308` with `Retry-After`.
    pub throttle_rate: f64,
    /// The `Retry-After` of random 429s, in seconds.
    pub retry_after_secs: u64,
    /// Share of requests answered 200 with a truncated or non-JSON body.
    pub malformed_rate: f64,
    /// While true, every list page asked for with offset > 0 first adds one image of the
    /// listed type, so `total_num` grows while a client pages through.
    pub total_drift: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            error_rate: 0.0,
            throttle_rate: 0.0,
            retry_after_secs: 1,
            malformed_rate: 0.0,
            total_drift: false,
        }
    }
}

/// "The next `count` requests to `endpoint` answer with `kind`". On the admin API:
/// `{"endpoint": "batch_scan", "count": 2, "kind": "status", "status": 503}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedFault {
    /// An [`Endpoint`] name (`list_swr_images`, `list_registry_images`, `batch_scan`,
    /// `create_scan_task`, … see [`Endpoint::name`]); `None` matches any.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "one")]
    pub count: u32,
    /// Let this many matching requests through first: "page 3 of the listing fails".
    #[serde(default)]
    pub after: u32,
    #[serde(flatten)]
    pub kind: FaultKind,
}

fn one() -> u32 {
    1
}

impl ScriptedFault {
    pub fn new(endpoint: Option<&str>, count: u32, kind: FaultKind) -> Self {
        Self {
            endpoint: endpoint.map(str::to_owned),
            count,
            after: 0,
            kind,
        }
    }

    /// The same fault, after `after` matching requests have been answered normally.
    pub fn after(mut self, after: u32) -> Self {
        self.after = after;
        self
    }

    /// The next `count` requests to `endpoint` answer `status` with its usual error code.
    pub fn status(endpoint: &str, count: u32, status: u16) -> Self {
        Self::new(
            Some(endpoint),
            count,
            FaultKind::Status {
                status,
                error_code: String::new(),
                retry_after: None,
            },
        )
    }

    fn matches(&self, endpoint: Endpoint) -> bool {
        let named = self
            .endpoint
            .as_deref()
            .is_none_or(|name| name == endpoint.name());
        // An in-body sync error only exists for the synchronize call, a wrong page only for
        // the image list calls.
        let applicable = match self.kind {
            FaultKind::SyncErrorInBody => endpoint == Endpoint::Synchronize,
            FaultKind::TaskTimedOut | FaultKind::TaskError => endpoint == Endpoint::CreateScanTask,
            ref kind if kind.is_page_fault() => endpoint.lists_images(),
            _ => true,
        };
        self.count > 0 && named && applicable
    }
}

/// How a scripted fault answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// An error status; an empty `error_code` gets the usual one for the status
    /// (`APIG.0308` for 429, `HSS.0500`/`HSS.0503` for 5xx).
    Status {
        status: u16,
        #[serde(default)]
        error_code: String,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// 200 with a truncated or non-JSON body.
    Malformed,
    /// `synchronize` answers 200 `{"error_code": 1, "error_description": "sync failed"}`.
    SyncErrorInBody,
    /// Never answers (until the simulator shuts down): the client's timeout fires.
    Hang,
    /// The request is carried out, then answered with a 504 as if the gateway lost the
    /// answer: the client cannot tell that HSS took it.
    LoseAnswer,
    /// Image lists: the page is the first page, whatever `offset` says.
    IgnoreOffset,
    /// Image lists: the page's last record is a copy of its first (one record: twice).
    DuplicateImage,
    /// Image lists: the records at even positions of the page lack their `fields`.
    MissingFields { fields: Identity },
    /// Image lists: the records at even positions claim the next image type.
    WrongType,
    /// Image lists: `total_num` is this (default 10^12) while the pages stay normal.
    HugeTotal {
        #[serde(default = "huge")]
        total_num: u64,
    },
    /// Create-scan-task: the task is created and its images scanned, but once the last one
    /// ends the task reports -2 (timed out).
    TaskTimedOut,
    /// Create-scan-task: as `task_timed_out`, with -3 (error).
    TaskError,
    /// Any call: the answer's body comes `bytes` at a time, one chunk every `interval_ms`.
    Trickle {
        #[serde(default = "trickle_bytes")]
        bytes: usize,
        #[serde(default = "trickle_interval")]
        interval_ms: u64,
    },
}

fn huge() -> u64 {
    1_000_000_000_000
}

fn trickle_bytes() -> usize {
    16
}

fn trickle_interval() -> u64 {
    100
}

impl FaultKind {
    /// Faults that change an image list page rather than replace the answer.
    pub fn is_page_fault(&self) -> bool {
        matches!(
            self,
            FaultKind::IgnoreOffset
                | FaultKind::DuplicateImage
                | FaultKind::MissingFields { .. }
                | FaultKind::WrongType
                | FaultKind::HugeTotal { .. }
        )
    }
}

/// The injector's verdict for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Injected {
    Error(ApiError),
    Malformed,
    SyncErrorInBody,
    Hang,
    LoseAnswer,
    /// The request is handled, and its page changed.
    Page(PageFault),
    /// The request is handled, and the scan task it creates ends this way.
    TaskEnding(Ending),
    /// The request is handled, and its answer trickles out.
    Trickle {
        bytes: usize,
        interval: Duration,
    },
}

impl From<FaultKind> for Injected {
    fn from(kind: FaultKind) -> Self {
        match kind {
            FaultKind::Status {
                status,
                error_code,
                retry_after,
            } => Injected::Error(ApiError::injected(status, &error_code, retry_after)),
            FaultKind::Malformed => Injected::Malformed,
            FaultKind::SyncErrorInBody => Injected::SyncErrorInBody,
            FaultKind::Hang => Injected::Hang,
            FaultKind::LoseAnswer => Injected::LoseAnswer,
            FaultKind::IgnoreOffset => Injected::Page(PageFault::IgnoreOffset),
            FaultKind::DuplicateImage => Injected::Page(PageFault::DuplicateImage),
            FaultKind::MissingFields { fields } => Injected::Page(PageFault::MissingFields(fields)),
            FaultKind::WrongType => Injected::Page(PageFault::WrongType),
            FaultKind::HugeTotal { total_num } => Injected::Page(PageFault::HugeTotal(total_num)),
            FaultKind::TaskTimedOut => Injected::TaskEnding(Ending::TimedOut),
            FaultKind::TaskError => Injected::TaskEnding(Ending::Error),
            FaultKind::Trickle { bytes, interval_ms } => Injected::Trickle {
                bytes,
                interval: Duration::from_millis(interval_ms),
            },
        }
    }
}

/// The current random faults, the queue of scripted ones and the seeded RNG.
pub(crate) struct FaultInjector {
    state: Mutex<State>,
}

struct State {
    faults: Faults,
    scripted: VecDeque<ScriptedFault>,
    rng: StdRng,
}

impl FaultInjector {
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            state: Mutex::new(State {
                faults,
                scripted: VecDeque::new(),
                rng: StdRng::seed_from_u64(seed),
            }),
        }
    }

    pub fn faults(&self) -> Faults {
        lock(&self.state).faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).faults = faults;
    }

    /// "The next `count` requests to this endpoint": it replaces whatever was still pending
    /// for the same endpoint selector, so a test states what happens next without having to
    /// know what an earlier step left unused. A count of 0 just cancels.
    pub fn push(&self, fault: ScriptedFault) {
        let mut state = lock(&self.state);
        state.scripted.retain(|f| f.endpoint != fault.endpoint);
        if fault.count > 0 {
            state.scripted.push_back(fault);
        }
    }

    /// Consumes one use of the first scripted fault that applies to `endpoint`.
    pub fn take_scripted(&self, endpoint: Endpoint) -> Option<Injected> {
        let mut state = lock(&self.state);
        let position = state.scripted.iter().position(|f| f.matches(endpoint))?;
        let fault = state.scripted.get_mut(position)?;
        if fault.after > 0 {
            fault.after -= 1;
            return None;
        }
        fault.count -= 1;
        let kind = fault.kind.clone();
        if fault.count == 0 {
            state.scripted.remove(position);
        }
        Some(kind.into())
    }

    /// Draws the random faults, throttling first as the gateway would.
    pub fn roll(&self) -> Option<Injected> {
        let mut state = lock(&self.state);
        let State { faults, rng, .. } = &mut *state;
        if faults.throttle_rate > 0.0 && rng.random::<f64>() < faults.throttle_rate {
            return Some(Injected::Error(ApiError::throttled(
                faults.retry_after_secs,
            )));
        }
        if faults.error_rate > 0.0 && rng.random::<f64>() < faults.error_rate {
            let status = if rng.random::<bool>() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return Some(Injected::Error(ApiError::server(status)));
        }
        if faults.malformed_rate > 0.0 && rng.random::<f64>() < faults.malformed_rate {
            return Some(Injected::Malformed);
        }
        None
    }
}

/// A 200 body a JSON client cannot read, varied so clients meet each kind of breakage.
pub fn malformed_body(nth: u64) -> &'static str {
    match nth % 3 {
        0 => r#"{"total_num": 1000, "data_list": [{"id": 1, "namespace": "prod-te"#,
        1 => "<html><body><h1>502 Bad Gateway</h1></body></html>",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delayed_fault_lets_requests_through_first() {
        let injector = FaultInjector::new(Faults::default(), 1);
        injector.push(ScriptedFault::status("list_swr_images", 1, 503).after(2));
        assert_eq!(injector.take_scripted(Endpoint::ListSwrImages), None);
        assert_eq!(injector.take_scripted(Endpoint::ListSwrImages), None);
        assert!(injector.take_scripted(Endpoint::ListSwrImages).is_some());
        assert_eq!(injector.take_scripted(Endpoint::ListSwrImages), None);
    }

    #[test]
    fn scripted_faults_are_used_up_in_order() {
        let injector = FaultInjector::new(Faults::default(), 1);
        injector.push(ScriptedFault::status("batch_scan", 2, 503));
        injector.push(ScriptedFault::new(None, 1, FaultKind::Malformed));
        assert_eq!(
            injector.take_scripted(Endpoint::ListSwrImages),
            Some(Injected::Malformed)
        );
        for _ in 0..2 {
            let Some(Injected::Error(e)) = injector.take_scripted(Endpoint::BatchScan) else {
                panic!("expected an error");
            };
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        }
        assert_eq!(injector.take_scripted(Endpoint::BatchScan), None);
    }

    #[test]
    fn a_new_fault_for_an_endpoint_replaces_the_unused_rest() {
        let injector = FaultInjector::new(Faults::default(), 1);
        injector.push(ScriptedFault::new(
            Some("list_swr_images"),
            10,
            FaultKind::Malformed,
        ));
        assert_eq!(
            injector.take_scripted(Endpoint::ListSwrImages),
            Some(Injected::Malformed)
        );
        injector.push(ScriptedFault::new(
            Some("list_swr_images"),
            1,
            FaultKind::Hang,
        ));
        assert_eq!(
            injector.take_scripted(Endpoint::ListSwrImages),
            Some(Injected::Hang)
        );
        assert_eq!(injector.take_scripted(Endpoint::ListSwrImages), None);
        injector.push(ScriptedFault::status("batch_scan", 3, 500));
        injector.push(ScriptedFault::status("batch_scan", 0, 500));
        assert_eq!(
            injector.take_scripted(Endpoint::BatchScan),
            None,
            "count 0 cancels"
        );
    }

    #[test]
    fn sync_error_in_body_only_hits_synchronize() {
        let injector = FaultInjector::new(Faults::default(), 1);
        injector.push(ScriptedFault::new(None, 1, FaultKind::SyncErrorInBody));
        assert_eq!(injector.take_scripted(Endpoint::ListSwrImages), None);
        assert_eq!(
            injector.take_scripted(Endpoint::Synchronize),
            Some(Injected::SyncErrorInBody)
        );
    }

    #[test]
    fn page_faults_only_hit_the_image_lists() {
        let injector = FaultInjector::new(Faults::default(), 1);
        injector.push(ScriptedFault::new(None, 2, FaultKind::WrongType));
        assert_eq!(injector.take_scripted(Endpoint::BatchScan), None);
        assert_eq!(
            injector.take_scripted(Endpoint::ListSwrImages),
            Some(Injected::Page(PageFault::WrongType))
        );
        assert_eq!(
            injector.take_scripted(Endpoint::ListRegistryImages),
            Some(Injected::Page(PageFault::WrongType))
        );
        let json: ScriptedFault = serde_json::from_str(
            r#"{"endpoint":"list_registry_images","kind":"missing_fields","fields":"id"}"#,
        )
        .unwrap();
        assert_eq!(
            json.kind,
            FaultKind::MissingFields {
                fields: Identity::Id
            }
        );
        let huge: ScriptedFault = serde_json::from_str(r#"{"kind":"huge_total"}"#).unwrap();
        assert_eq!(
            huge.kind,
            FaultKind::HugeTotal {
                total_num: 1_000_000_000_000
            }
        );
        let trickle: ScriptedFault =
            serde_json::from_str(r#"{"kind":"trickle","bytes":4}"#).unwrap();
        assert_eq!(
            Injected::from(trickle.kind),
            Injected::Trickle {
                bytes: 4,
                interval: Duration::from_millis(100)
            }
        );
    }

    #[test]
    fn rates_are_seeded_and_roughly_right() {
        let faults = Faults {
            throttle_rate: 0.2,
            ..Faults::default()
        };
        let count = |seed| {
            let injector = FaultInjector::new(faults.clone(), seed);
            (0..10_000).filter(|_| injector.roll().is_some()).count()
        };
        let hits = count(5);
        assert_eq!(hits, count(5), "same seed, same faults");
        assert!((1_700..2_300).contains(&hits), "{hits}");
        assert_eq!(FaultInjector::new(Faults::default(), 5).roll(), None);
    }

    #[test]
    fn scripted_fault_json_is_flat() {
        let fault: ScriptedFault = serde_json::from_str(
            r#"{"endpoint":"batch_scan","count":2,"kind":"status","status":429,"retry_after":3}"#,
        )
        .unwrap();
        assert_eq!(
            fault.kind,
            FaultKind::Status {
                status: 429,
                error_code: String::new(),
                retry_after: Some(3)
            }
        );
        let hang: ScriptedFault = serde_json::from_str(r#"{"kind":"hang"}"#).unwrap();
        assert_eq!(
            (hang.endpoint, hang.count, hang.kind),
            (None, 1, FaultKind::Hang)
        );
        let faults: Faults =
            serde_json::from_str(r#"{"latency":"5ms","total_drift":true}"#).unwrap();
        assert_eq!(faults.latency, Duration::from_millis(5));
        assert!(faults.total_drift);
    }
}
