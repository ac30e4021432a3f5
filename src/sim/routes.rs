//! The request pipeline. Every API request goes, in this order, through: count it, add the
//! configured latency, authenticate, apply a scripted fault, roll the random faults, validate,
//! handle. Faults come after authentication (the gateway rejects a bad signature before the
//! service is even reached) and before validation and handling, so an injected answer never
//! changes state.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::auth::ReceivedRequest;
use super::endpoint::Endpoint;
use super::error::ApiError;
use super::faults::{Injected, malformed_body};
use super::params::Query;
use super::{Sim, admin, images_api, lock, now_ms, registries};

/// Large enough for 10242 batch-scan items with long names, so the 10241 limit is what
/// answers, not the HTTP layer.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v5/{*rest}", any(api))
        .nest("/sim", admin::router())
        .fallback(unknown_path)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&sim),
            tag_response,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(sim)
}

/// Which API a method and path name: `(project id, endpoint)`.
fn route<'p>(method: &Method, path: &'p str) -> Option<(std::borrow::Cow<'p, str>, Endpoint)> {
    let (project, operation) = path.strip_prefix("/v5/")?.split_once('/')?;
    let endpoint = match (method.as_str(), operation) {
        ("GET", "image/swr-repository") => Endpoint::ListSwrImages,
        ("POST", "image/synchronize") => Endpoint::Synchronize,
        ("POST", "image/batch-scan") => Endpoint::BatchScan,
        ("POST", "image/registries") => Endpoint::AddRegistry,
        ("GET", "image/registries") => Endpoint::ListRegistries,
        ("GET", "image/registries/image-upload-command") => Endpoint::UploadCommand,
        _ => return None,
    };
    Some((percent_decode_str(project).decode_utf8_lossy(), endpoint))
}

async fn api(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((project, endpoint)) = route(&method, uri.path()) else {
        sim.stats.request("unknown");
        return ApiError::api_not_found().into_response();
    };
    sim.stats.request(endpoint.name());
    if project != sim.project_id {
        return ApiError::api_not_found().into_response();
    }

    let latency = sim.faults.faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let received = ReceivedRequest {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    if let Err(reason) = sim.credentials.verify(&received, chrono::Utc::now()) {
        sim.stats.update(|s| s.auth_failures += 1);
        tracing::info!(%endpoint, %reason, "authentication failed");
        return ApiError::auth_failed().into_response();
    }

    let mut lose_answer = false;
    match sim
        .faults
        .take_scripted(endpoint)
        .or_else(|| sim.faults.roll())
    {
        Some(Injected::LoseAnswer) => lose_answer = true,
        Some(injected) => return inject(&sim, endpoint, injected).await,
        None => {}
    }

    let now = now_ms();
    let query = Query::parse(uri.query());
    let result = match endpoint {
        Endpoint::ListSwrImages => {
            images_api::list(&sim, &query, now).map(IntoResponse::into_response)
        }
        Endpoint::Synchronize => {
            images_api::synchronize(&sim, &body).map(IntoResponse::into_response)
        }
        Endpoint::BatchScan => {
            images_api::batch_scan(&sim, &body, now).map(IntoResponse::into_response)
        }
        Endpoint::AddRegistry => lock(&sim.registries).add(&body, now).map(|()| {
            sim.stats.update(|s| s.registries_added += 1);
            axum::Json(json!({})).into_response()
        }),
        Endpoint::ListRegistries => lock(&sim.registries)
            .list(&query)
            .map(|page| axum::Json(page).into_response()),
        Endpoint::UploadCommand => {
            registries::upload_command(&query).map(|v| axum::Json(v).into_response())
        }
    };
    if lose_answer {
        sim.stats.update(|s| s.injected_errors += 1);
        return ApiError::server(StatusCode::GATEWAY_TIMEOUT).into_response();
    }
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Answers with an injected fault and counts it.
async fn inject(sim: &Sim, endpoint: Endpoint, injected: Injected) -> Response {
    tracing::debug!(%endpoint, ?injected, "injecting a fault");
    match injected {
        Injected::Error(error) => {
            if error.status == StatusCode::TOO_MANY_REQUESTS {
                sim.stats.update(|s| s.throttled += 1);
            } else {
                sim.stats.update(|s| s.injected_errors += 1);
            }
            error.into_response()
        }
        Injected::Malformed => {
            let nth = {
                let mut n = 0;
                sim.stats.update(|s| {
                    n = s.malformed;
                    s.malformed += 1;
                });
                n
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                malformed_body(nth),
            )
                .into_response()
        }
        Injected::SyncErrorInBody => {
            sim.stats.update(|s| s.injected_errors += 1);
            axum::Json(json!({ "error_code": 1, "error_description": "sync failed" }))
                .into_response()
        }
        Injected::Hang => {
            sim.stats.update(|s| s.injected_errors += 1);
            // Hold the request until shutdown: the client's timeout is what is being tested,
            // and shutdown must not wait for a request that would never end.
            let mut shutdown = sim.shutdown.clone();
            let _ = shutdown.wait_for(|stop| *stop).await;
            ApiError::server(StatusCode::SERVICE_UNAVAILABLE).into_response()
        }
        // Handled by the caller, after the request has been carried out.
        Injected::LoseAnswer => ApiError::server(StatusCode::GATEWAY_TIMEOUT).into_response(),
    }
}

async fn unknown_path() -> Response {
    ApiError::api_not_found().into_response()
}

/// Gives every response an `X-Request-Id` and counts API responses by status. Logs the path
/// only: the upload-command query carries a registry password.
async fn tag_response(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/v5/");
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let request_id = sim.next_request_id();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if is_api {
        sim.stats.response(response.status().as_u16());
    }
    tracing::debug!(%method, %path, status = response.status().as_u16(), %request_id, "answered");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_method_and_exact_path() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            route(&get, "/v5/p/image/swr-repository").map(|(p, e)| (p.into_owned(), e)),
            Some(("p".into(), Endpoint::ListSwrImages))
        );
        assert!(route(&post, "/v5/p/image/swr-repository").is_none());
        assert!(route(&get, "/v5/p/image/swr-repository/").is_none());
        assert_eq!(
            route(&post, "/v5/p/image/registries").map(|r| r.1),
            Some(Endpoint::AddRegistry)
        );
        assert_eq!(
            route(&get, "/v5/p/image/registries").map(|r| r.1),
            Some(Endpoint::ListRegistries)
        );
        assert!(route(&get, "/v5/").is_none());
    }
}
