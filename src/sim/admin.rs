//! The control API under `/sim/`, unauthenticated, for processes that cannot hold a
//! [`SimHandle`](super::SimHandle): benchmarks, the demo, a shell.
//!
//! | request | body | does |
//! |---|---|---|
//! | `GET /sim/stats` | | the counters ([`SimStats`](super::SimStats)) |
//! | `GET /sim/faults`, `PUT /sim/faults` | [`Faults`](super::Faults) | read or replace the random faults |
//! | `POST /sim/fail-next` | [`ScriptedFault`](super::ScriptedFault) | script the next answers of an endpoint (replaces what is pending for it) |
//! | `POST /sim/images/add`, `…/delete`, `…/restore` | `{"image_type": "private_image", "count": 5}` | change the account |
//! | `POST /sim/credentials` | `{"ak": "…", "sk": "…", "token": null}` | accept another key pair |

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Sim;
use super::endpoint::Endpoint;
use super::error::ApiError;
use super::faults::{Faults, ScriptedFault};
use crate::domain::ImageType;
use crate::sim::dataset::kind_of;

pub(crate) fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/faults", get(faults).put(set_faults))
        .route("/fail-next", post(fail_next))
        .route("/images/{action}", post(images))
        .route("/credentials", post(credentials))
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
    image_type: ImageType,
    #[serde(default)]
    count: usize,
}

async fn images(State(sim): State<Arc<Sim>>, Path(action): Path<String>, body: Bytes) -> Response {
    let change = match parse::<ImagesChange>(&body) {
        Ok(change) => change,
        Err(e) => return e.into_response(),
    };
    if kind_of(&change.image_type).is_none() {
        return ApiError::invalid(
            "image_type",
            "must be private_image, shared_image or instance_image",
        )
        .into_response();
    }
    let affected = match action.as_str() {
        "add" => sim.add_images(&change.image_type, change.count),
        "delete" => sim.delete_images(&change.image_type, change.count),
        "restore" => sim.restore_images(&change.image_type),
        _ => return ApiError::api_not_found().into_response(),
    };
    let live = sim.live_images(&change.image_type);
    tracing::info!(action, image_type = %change.image_type, affected, live, "account changed");
    Json(json!({ "image_type": change.image_type, "affected": affected, "live": live }))
        .into_response()
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
