//! The request pipeline. Every API request goes, in this order, through: count it, answer
//! 404 if its API is switched off (the gateway does not know it), add the configured latency,
//! authenticate, apply a scripted fault, roll the random faults, run HSS's own due work (the
//! scan policy), validate, handle. Faults come after authentication (the gateway rejects a
//! bad signature before the service is even reached) and before validation and handling, so
//! an injected error never changes state; the faults that bend a successful answer (a wrong
//! page, a trickling body, a lost answer) are applied to the handled request's answer.

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
use super::page_faults::{self, PageFault};
use super::params::Query;
use super::tasks::Ending;
use super::{
    Sim, admin, billing, images_api, lock, policy, read, registries, registry_images_api,
    tasks_api, write,
};

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

/// Which API a method and path name: project id, endpoint, and the path parameter (a task
/// id or a switch code) for the endpoints that have one.
struct Routed<'p> {
    project: std::borrow::Cow<'p, str>,
    endpoint: Endpoint,
    param: String,
}

fn route<'p>(method: &Method, path: &'p str) -> Option<Routed<'p>> {
    let (project, operation) = path.strip_prefix("/v5/")?.split_once('/')?;
    let mut param = "";
    let endpoint = match (method.as_str(), operation) {
        ("GET", "image/swr-repository") => Endpoint::ListSwrImages,
        ("POST", "image/synchronize") => Endpoint::Synchronize,
        ("POST", "image/batch-scan") => Endpoint::BatchScan,
        ("POST", "image/registries") => Endpoint::AddRegistry,
        ("GET", "image/registries") => Endpoint::ListRegistries,
        ("GET", "image/registries/image-upload-command") => Endpoint::UploadCommand,
        ("GET", "image/registries/images") => Endpoint::ListRegistryImages,
        ("POST", "image/image-scan/tasks") => Endpoint::CreateScanTask,
        ("GET", "image/tasks") => Endpoint::ListTasks,
        ("POST", "image/image-sync/tasks") => Endpoint::CreateSyncTask,
        ("GET", "image/scanner-policies") => Endpoint::ListScanPolicy,
        ("PUT", "image/scanner-policies") => Endpoint::ModifyScanPolicy,
        ("GET", "image/pay-per-scan/statistics") => Endpoint::PayPerScanStatistics,
        (method, operation) => {
            let (endpoint, value) = parameterised(method, operation)?;
            param = value;
            endpoint
        }
    };
    Some(Routed {
        project: percent_decode_str(project).decode_utf8_lossy(),
        endpoint,
        param: percent_decode_str(param).decode_utf8_lossy().into_owned(),
    })
}

/// The routes with one path segment as a parameter; the segment must be non-empty.
fn parameterised<'p>(method: &str, operation: &'p str) -> Option<(Endpoint, &'p str)> {
    let segment = |prefix: &str, suffix: &str| {
        operation
            .strip_prefix(prefix)?
            .strip_suffix(suffix)
            .filter(|v| !v.is_empty() && !v.contains('/'))
    };
    match method {
        "PUT" => segment("image/image-scan/tasks/", "/stop")
            .map(|id| (Endpoint::StopScanTask, id))
            .or_else(|| segment("setting/switches/", "").map(|c| (Endpoint::ChangeSwitch, c))),
        "GET" => segment("image/image-sync/tasks/", "/registries")
            .map(|id| (Endpoint::ListSyncRegistries, id))
            .or_else(|| segment("setting/switches/", "").map(|c| (Endpoint::ShowSwitch, c))),
        _ => None,
    }
}

async fn api(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(Routed {
        project,
        endpoint,
        param,
    }) = route(&method, uri.path())
    else {
        sim.stats.request("unknown");
        return ApiError::api_not_found().into_response();
    };
    sim.stats.request(endpoint.name());
    if project != sim.project_id {
        return ApiError::api_not_found().into_response();
    }
    // An API that is not published is unknown to the gateway: 404 before anything else.
    if (endpoint.is_deprecated() && sim.settings.deprecated_removed())
        || (endpoint.is_current() && sim.settings.current_missing())
    {
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
    let mut page_fault = None;
    let mut trickle = None;
    let mut task_ending = Ending::Normal;
    match sim
        .faults
        .take_scripted(endpoint)
        .or_else(|| sim.faults.roll())
    {
        Some(Injected::LoseAnswer) => lose_answer = true,
        Some(Injected::Page(fault)) => page_fault = Some(fault),
        Some(Injected::Trickle { bytes, interval }) => trickle = Some((bytes, interval)),
        Some(Injected::TaskEnding(ending)) => task_ending = ending,
        Some(injected) => return inject(&sim, endpoint, injected).await,
        None => {}
    }

    let now = sim.now_ms();
    policy::tick(&sim, now);
    let query = Query::parse(uri.query());
    let request = Handled {
        endpoint,
        param: &param,
        query: &query,
        headers: &headers,
        body: &body,
        now,
        page_fault,
        task_ending,
    };
    let result = handle(&sim, &request);
    if lose_answer {
        sim.stats.update(|s| s.injected_errors += 1);
        return ApiError::server(StatusCode::GATEWAY_TIMEOUT).into_response();
    }
    if page_fault.is_some() || trickle.is_some() || task_ending != Ending::Normal {
        sim.stats.update(|s| s.hostile_answers += 1);
    }
    let response = result.unwrap_or_else(IntoResponse::into_response);
    match trickle {
        Some((bytes, interval)) => {
            page_faults::trickle(response, bytes, interval, sim.shutdown.clone()).await
        }
        None => response,
    }
}

/// A request that got through authentication and the faults.
struct Handled<'r> {
    endpoint: Endpoint,
    param: &'r str,
    query: &'r Query,
    headers: &'r HeaderMap,
    body: &'r [u8],
    now: i64,
    page_fault: Option<PageFault>,
    task_ending: Ending,
}

/// An empty 200, the answer of the current calls that return nothing.
fn empty() -> Response {
    StatusCode::OK.into_response()
}

fn handle(sim: &Sim, r: &Handled<'_>) -> Result<Response, ApiError> {
    let json = |v: serde_json::Value| axum::Json(v).into_response();
    match r.endpoint {
        Endpoint::ListSwrImages => images_api::list(sim, r.query, r.now, r.page_fault),
        Endpoint::Synchronize => {
            images_api::synchronize(sim, r.body, r.now).map(IntoResponse::into_response)
        }
        Endpoint::BatchScan => {
            images_api::batch_scan(sim, r.body, r.now).map(IntoResponse::into_response)
        }
        Endpoint::AddRegistry => {
            let mut registries = lock(&sim.registries);
            let added = registries.add(r.body, r.now)?;
            let kind = super::Kind::from_registry_type(&added.registry_type)
                .unwrap_or(super::Kind::Harbor);
            write(&sim.dataset).add_registry(
                added.id,
                added.registry_name,
                kind,
                sim.settings.registry_images(),
                false,
                r.now,
            );
            sim.stats.update(|s| s.registries_added += 1);
            Ok(json(json!({})))
        }
        Endpoint::ListRegistries => {
            let registries = lock(&sim.registries);
            let dataset = read(&sim.dataset);
            let now = r.now;
            let counts = |id: &str| {
                dataset.registry_by_id(id).map_or((0, 0), |slot| {
                    let registry = &dataset.registries[slot];
                    (registry.live, registry.latest_sync_ms(now))
                })
            };
            registries.list(r.query, &counts).map(json)
        }
        Endpoint::UploadCommand => registries::upload_command(r.query).map(json),
        Endpoint::ListRegistryImages => {
            registry_images_api::list(sim, r.query, r.now, r.page_fault)
        }
        Endpoint::CreateScanTask => {
            tasks_api::create_scan_task(sim, r.query, r.headers, r.body, r.now, r.task_ending)
                .map(|()| empty())
        }
        Endpoint::ListTasks => tasks_api::list_tasks(sim, r.query, r.now).map(json_response),
        Endpoint::StopScanTask => {
            tasks_api::stop_scan_task(sim, r.param, r.query, r.headers, r.now).map(|()| empty())
        }
        Endpoint::CreateSyncTask => {
            tasks_api::create_sync_task(sim, r.query, r.headers, r.body, r.now).map(|()| empty())
        }
        Endpoint::ListSyncRegistries => {
            tasks_api::list_sync_registries(sim, r.param, r.query, r.now).map(json_response)
        }
        Endpoint::ListScanPolicy => policy::show(sim, r.query).map(json_response),
        Endpoint::ModifyScanPolicy => policy::modify(sim, r.query, r.body, r.now).map(|()| empty()),
        Endpoint::PayPerScanStatistics => {
            billing::statistics(sim, r.query, r.now).map(json_response)
        }
        Endpoint::ShowSwitch => billing::show_switch(sim, r.param, r.query).map(json_response),
        Endpoint::ChangeSwitch => {
            billing::change_switch(sim, r.param, r.query, r.body).map(|()| empty())
        }
    }
}

fn json_response(value: axum::Json<serde_json::Value>) -> Response {
    value.into_response()
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
        Injected::LoseAnswer
        | Injected::Page(_)
        | Injected::Trickle { .. }
        | Injected::TaskEnding(_) => ApiError::server(StatusCode::GATEWAY_TIMEOUT).into_response(),
    }
}

async fn unknown_path() -> Response {
    ApiError::api_not_found().into_response()
}

/// Gives every response an `X-Request-Id` and a `Date` by the simulator's clock (a client
/// matches what the simulator stamps, a scan task's begin time, against it), and counts API
/// responses by status. Logs the path only: the upload-command query carries a registry
/// password.
async fn tag_response(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/v5/");
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let request_id = sim.next_request_id();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let now = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(sim.now_ms()).unwrap_or(0));
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
        response.headers_mut().insert(header::DATE, value);
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

    fn endpoint(method: &Method, path: &str) -> Option<(String, Endpoint, String)> {
        route(method, path).map(|r| (r.project.into_owned(), r.endpoint, r.param))
    }

    #[test]
    fn routes_need_method_and_exact_path() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            endpoint(&get, "/v5/p/image/swr-repository"),
            Some(("p".into(), Endpoint::ListSwrImages, String::new()))
        );
        assert!(route(&post, "/v5/p/image/swr-repository").is_none());
        assert!(route(&get, "/v5/p/image/swr-repository/").is_none());
        assert_eq!(
            route(&post, "/v5/p/image/registries").map(|r| r.endpoint),
            Some(Endpoint::AddRegistry)
        );
        assert_eq!(
            route(&get, "/v5/p/image/registries").map(|r| r.endpoint),
            Some(Endpoint::ListRegistries)
        );
        assert_eq!(
            route(&get, "/v5/p/image/registries/images").map(|r| r.endpoint),
            Some(Endpoint::ListRegistryImages)
        );
        assert!(route(&get, "/v5/").is_none());
    }

    #[test]
    fn path_parameters_are_decoded_and_never_empty() {
        assert_eq!(
            endpoint(&Method::PUT, "/v5/p/image/image-scan/tasks/t%2F1/stop"),
            Some(("p".into(), Endpoint::StopScanTask, "t/1".into()))
        );
        assert!(route(&Method::PUT, "/v5/p/image/image-scan/tasks//stop").is_none());
        assert!(route(&Method::PUT, "/v5/p/image/image-scan/tasks/a/b/stop").is_none());
        assert_eq!(
            endpoint(&Method::GET, "/v5/p/setting/switches/image_pay_per_scan").map(|r| r.1),
            Some(Endpoint::ShowSwitch)
        );
        assert_eq!(
            endpoint(&Method::PUT, "/v5/p/setting/switches/image_popup").map(|r| (r.1, r.2)),
            Some((Endpoint::ChangeSwitch, "image_popup".into()))
        );
        assert_eq!(
            endpoint(&Method::GET, "/v5/p/image/image-sync/tasks/x/registries").map(|r| r.2),
            Some("x".into())
        );
        assert!(route(&Method::POST, "/v5/p/setting/switches/x").is_none());
    }
}
