//! The control API under `/sim/`, unauthenticated, for processes that cannot hold a
//! [`SimHandle`](super::SimHandle): benchmarks, the demo, a shell.
//!
//! | request | body | does |
//! |---|---|---|
//! | `GET /sim/stats` | | the counters ([`SimStats`](super::SimStats)) |
//! | `GET /sim/faults`, `PUT /sim/faults` | [`Faults`](super::Faults) | read or replace the random faults |
//! | `POST /sim/fail-next` | [`ScriptedFault`](super::ScriptedFault) | script the next answers of an endpoint (replaces what is pending for it) |
//! | `POST /sim/images/add`, `…/delete`, `…/restore` | `{"image_type": "private_image", "count": 5}` | change the account (any wire type, `harbor` and `jfrog` too) |
//! | `POST /sim/churn` | [`Churn`](super::Churn): `{"share": 0.01}` or `{"new": 5, "repushed": 2, "deleted": 1, "rescanned": 3}`, optionally `"backdate_ms": 3600000` | move the account; answers a [`ChurnReport`](super::ChurnReport) |
//! | `GET /sim/clock`, `POST /sim/clock` | `{"advance_ms": 300000}` | read, or move forward, the simulator's clock; answers `{"now_ms": …, "frozen": …}` |
//! | `POST /sim/credentials` | `{"ak": "…", "sk": "…", "token": null}` | accept another key pair |
//! | `PUT /sim/pay-per-scan` | `{"enabled": false}` | the `image_pay_per_scan` switch |
//! | `GET /sim/apis`, `PUT /sim/apis` | `{"deprecated_removed": true, "current_missing": false}` (either field) | make an API generation answer 404 `APIGW.0101` |
//! | `GET /sim/scan-policy`, `PUT /sim/scan-policy` | [`ScanPolicy`](super::ScanPolicy) | HSS's own periodic scan |
//! | `PUT /sim/settings` | `{"max_scan_task_items": 100, "registry_images": 50}` (either; `null` lifts the cap) | limits of later calls |

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::endpoint::Endpoint;
use super::error::ApiError;
use super::faults::{Faults, ScriptedFault};
use super::kind::Kind;
use super::{Churn, ScanPolicy, Sim, billing, lock};

pub(crate) fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/faults", get(faults).put(set_faults))
        .route("/fail-next", post(fail_next))
        .route("/images/{action}", post(images))
        .route("/credentials", post(credentials))
        .route("/churn", post(churn))
        .route("/clock", get(clock).post(advance_clock))
        .route("/pay-per-scan", put(pay_per_scan))
        .route("/apis", get(apis).put(set_apis))
        .route("/scan-policy", get(scan_policy).put(set_scan_policy))
        .route("/settings", put(settings))
}

/// Parses a JSON body into `T`, answering a 400 in the API's error shape otherwise.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", e))
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.stats.snapshot()).into_response()
}

async fn faults(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.faults.faults()).into_response()
}

async fn set_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match parse::<Faults>(&body) {
        Ok(faults) => {
            tracing::info!(?faults, "faults changed");
            sim.faults.set_faults(faults.clone());
            Json(faults).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn fail_next(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let fault = match parse::<ScriptedFault>(&body) {
        Ok(fault) => fault,
        Err(e) => return e.into_response(),
    };
    if let Some(name) = fault.endpoint.as_deref()
        && Endpoint::from_name(name).is_none()
    {
        let known: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
        return ApiError::invalid("endpoint", format!("must be one of {}", known.join(", ")))
            .into_response();
    }
    sim.faults.push(fault.clone());
    Json(fault).into_response()
}

#[derive(Deserialize)]
struct ImagesChange {
    image_type: String,
    #[serde(default)]
    count: usize,
}

async fn images(State(sim): State<Arc<Sim>>, Path(action): Path<String>, body: Bytes) -> Response {
    let change = match parse::<ImagesChange>(&body) {
        Ok(change) => change,
        Err(e) => return e.into_response(),
    };
    let Some(kind) = Kind::parse(&change.image_type) else {
        return ApiError::invalid(
            "image_type",
            "must be private_image, shared_image, instance_image, harbor or jfrog",
        )
        .into_response();
    };
    let affected = match action.as_str() {
        "add" => sim.add_images(kind, change.count),
        "delete" => sim.delete_images(kind, change.count),
        "restore" => sim.restore_images(kind),
        _ => return ApiError::api_not_found().into_response(),
    };
    let live = sim.live_images(kind);
    tracing::info!(action, image_type = %kind, affected, live, "account changed");
    Json(json!({ "image_type": kind.wire(), "affected": affected, "live": live })).into_response()
}

async fn churn(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match parse::<Churn>(&body) {
        Ok(churn) if !(0.0..=1.0).contains(&churn.share) => {
            ApiError::invalid("share", "must be between 0 and 1").into_response()
        }
        Ok(churn) if churn.backdate_ms < 0 => {
            ApiError::invalid("backdate_ms", "must not be negative").into_response()
        }
        Ok(churn) => {
            let sim2 = Arc::clone(&sim);
            // A large churn walks the live lists: keep it off the async workers.
            match tokio::task::spawn_blocking(move || sim2.churn(&churn)).await {
                Ok(report) => {
                    tracing::info!(?report, "account churned");
                    Json(report).into_response()
                }
                Err(_) => {
                    ApiError::server(axum::http::StatusCode::INTERNAL_SERVER_ERROR).into_response()
                }
            }
        }
        Err(e) => e.into_response(),
    }
}

fn clock_now(sim: &Sim) -> Response {
    Json(json!({ "now_ms": sim.now_ms(), "frozen": sim.clock.is_frozen() })).into_response()
}

async fn clock(State(sim): State<Arc<Sim>>) -> Response {
    clock_now(&sim)
}

#[derive(Deserialize)]
struct ClockMove {
    advance_ms: i64,
}

async fn advance_clock(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match parse::<ClockMove>(&body) {
        // Time that went back would turn finished scans into running ones.
        Ok(step) if step.advance_ms < 0 => {
            ApiError::invalid("advance_ms", "must not be negative").into_response()
        }
        Ok(step) => {
            let now = sim.clock.advance(step.advance_ms);
            tracing::debug!(advance_ms = step.advance_ms, now, "clock moved");
            clock_now(&sim)
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct Switch {
    enabled: bool,
}

async fn pay_per_scan(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match parse::<Switch>(&body) {
        Ok(switch) => {
            lock(&sim.billing).set_switch(billing::PAY_PER_SCAN, switch.enabled);
            tracing::info!(enabled = switch.enabled, "pay-per-scan switch changed");
            Json(json!({ "enabled": switch.enabled })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct Apis {
    #[serde(default)]
    deprecated_removed: Option<bool>,
    #[serde(default)]
    current_missing: Option<bool>,
}

fn apis_now(sim: &Sim) -> Response {
    Json(json!({
        "deprecated_removed": sim.settings.deprecated_removed(),
        "current_missing": sim.settings.current_missing(),
    }))
    .into_response()
}

async fn apis(State(sim): State<Arc<Sim>>) -> Response {
    apis_now(&sim)
}

async fn set_apis(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    match parse::<Apis>(&body) {
        Ok(apis) => {
            if let Some(removed) = apis.deprecated_removed {
                sim.settings.deprecated_removed.store(removed, Relaxed);
            }
            if let Some(missing) = apis.current_missing {
                sim.settings.current_missing.store(missing, Relaxed);
            }
            tracing::info!("API availability changed");
            apis_now(&sim)
        }
        Err(e) => e.into_response(),
    }
}

async fn scan_policy(State(sim): State<Arc<Sim>>) -> Response {
    Json(lock(&sim.policy).policy.clone()).into_response()
}

async fn set_scan_policy(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let policy = match parse::<ScanPolicy>(&body) {
        Ok(policy) => policy,
        Err(e) => return e.into_response(),
    };
    match sim.set_scan_policy(policy.clone()) {
        Ok(()) => {
            tracing::info!(?policy, "scan policy changed");
            Json(policy).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct SettingsChange {
    /// Absent: unchanged; `null`: no cap.
    #[serde(default, deserialize_with = "some")]
    max_scan_task_items: Option<Option<usize>>,
    #[serde(default)]
    registry_images: Option<usize>,
}

/// Tells a field that is `null` (`Some(None)`) from one that is absent (`None`).
fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    Option::<usize>::deserialize(d).map(Some)
}

async fn settings(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    match parse::<SettingsChange>(&body) {
        Ok(change) => {
            if let Some(max) = change.max_scan_task_items {
                sim.settings.set_max_scan_task_items(max.filter(|&n| n > 0));
            }
            if let Some(images) = change.registry_images {
                sim.settings.registry_images.store(images, Relaxed);
            }
            Json(json!({
                "max_scan_task_items": sim.settings.max_scan_task_items(),
                "registry_images": sim.settings.registry_images(),
            }))
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct NewCredential {
    ak: String,
    sk: String,
    #[serde(default)]
    token: Option<String>,
}

async fn credentials(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match parse::<NewCredential>(&body) {
        Ok(c) => {
            sim.credentials.add(&c.ak, &c.sk, c.token.as_deref());
            tracing::info!(ak = %c.ak, with_token = c.token.is_some(), "credential added");
            Json(json!({})).into_response()
        }
        Err(e) => e.into_response(),
    }
}
