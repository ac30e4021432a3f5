//! Typed calls to the HSS image APIs: build and sign each request exactly as the official SDK
//! does, send it under a shared rate limit with a timeout, retry what is safe to retry, and map
//! every failure to one [`HssError`].
//!
//! Retry rules (DESIGN section 4): throttling (429, `APIG.0308`, `APIGW.0308`, `HSS.0005`) is
//! retried after at least 2 s, honouring `Retry-After`, jittered. 5xx, timeouts, broken
//! connections and unreadable answers are retried for GETs only: a POST whose body may have
//! reached HSS is never sent twice, because a batch scan is billed per image. A connection
//! that could not be made is retried for any call, since nothing was sent.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use url::Url;

use super::body::{self, BodyError};
use super::credentials::{CredentialProvider, Credentials};
use super::error::{ApiError, HssError};
use super::signer::{self, SignableRequest};
use super::wire_json;
use crate::domain::Target;

/// The shortest pause after HSS said "slow down" (Huawei suggests 2–5 s).
pub const THROTTLE_FLOOR: Duration = Duration::from_secs(2);
/// The longest `Retry-After` honoured; a longer one is treated as this, so a job cannot hang.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(300);
/// `User-Agent` of every call (signed, like every header the client sends).
pub const USER_AGENT: &str = concat!("hss-scand/", env!("CARGO_PKG_VERSION"));

/// The client-side rate limit, shared by every client of the process.
pub type SharedRateLimiter = Arc<DefaultDirectRateLimiter>;

/// A limiter allowing `per_second` calls a second, in bursts of at most that many.
pub fn rate_limiter(per_second: NonZeroU32) -> SharedRateLimiter {
    Arc::new(RateLimiter::direct(Quota::per_second(per_second)))
}

/// The regional endpoint of spec section 7: `https://hss.{region}.myhuaweicloud.com`, except
/// `eu-west-101`, which is served from `.myhuaweicloud.eu`.
pub fn default_endpoint(region: &str) -> Result<Url, String> {
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(format!(
            "region {region:?} is not a region id (lower-case letters, digits and '-')"
        ));
    }
    let domain = if region == "eu-west-101" {
        "myhuaweicloud.eu"
    } else {
        "myhuaweicloud.com"
    };
    Url::parse(&format!("https://hss.{region}.{domain}")).map_err(|e| e.to_string())
}

/// Learns about every answer and retry, for metrics. The client never depends on it.
pub trait ApiObserver: Send + Sync + std::fmt::Debug {
    /// One attempt ended: `code` is the HTTP status (`"200"`, `"429"`) or, with no answer,
    /// the error kind (`"timeout"`, `"connect"`).
    fn attempt(&self, call: &'static str, code: &str, elapsed: Duration);
    /// A retry is about to happen after `delay`, because of `reason` ([`HssError::kind`]).
    fn retry(&self, call: &'static str, reason: &'static str, delay: Duration);
    /// `target`'s region has no current image API, so `auto` uses the deprecated one.
    fn fell_back(&self, _target: &str) {}
}

#[derive(Debug)]
struct NoObserver;

impl ApiObserver for NoObserver {
    fn attempt(&self, _: &'static str, _: &str, _: Duration) {}
    fn retry(&self, _: &'static str, _: &'static str, _: Duration) {}
}

/// Everything a client needs to know about one target.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Scheme, host and optional port; no path.
    pub endpoint: Url,
    /// Sent as the `region` header on the calls that declare it.
    pub region: String,
    pub project_id: String,
    /// Empty: not sent (the default enterprise project).
    pub enterprise_project_id: String,
    pub request_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub user_agent: String,
}

impl ClientOptions {
    /// Options for `target`, at `endpoint` if given, else at the region's default endpoint.
    pub fn for_target(
        target: &Target,
        endpoint: Option<&Url>,
        request_timeout: Duration,
        max_retries: u32,
    ) -> Result<Self, String> {
        let endpoint = match endpoint {
            Some(url) => url.clone(),
            None => default_endpoint(&target.region)?,
        };
        Ok(ClientOptions {
            endpoint,
            region: target.region.clone(),
            project_id: target.project_id.clone(),
            enterprise_project_id: target.enterprise_project_id.clone(),
            request_timeout,
            max_retries,
            user_agent: USER_AGENT.to_owned(),
        })
    }
}

/// One call before signing: what the SDK's `HssClient` method would put together.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// The call's name, for errors, logs and metrics.
    pub call: &'static str,
    pub method: Method,
    /// After `/v5/{project_id}/`, already percent-encoded: `image/swr-repository`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The `region` header value, on the calls that declare the header.
    pub region: Option<String>,
    /// Values that must never appear in a log line or an error (a password in the query).
    pub secrets: Vec<String>,
}

/// A request exactly as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRequest {
    pub method: Method,
    pub url: String,
    /// In the order they are sent, `Authorization` last.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// Builds and signs `req` as the SDK's `HssClient` would at `sdk_date` (`YYYYMMDDTHHMMSSZ`):
/// the same headers in the same order, the canonical query string as the wire query.
pub fn build_wire_request(
    options: &ClientOptions,
    credentials: &Credentials,
    req: &ApiRequest,
    sdk_date: &str,
) -> WireRequest {
    let endpoint = &options.endpoint;
    let host = match endpoint.port() {
        Some(port) => format!("{}:{port}", endpoint.host_str().unwrap_or_default()),
        None => endpoint.host_str().unwrap_or_default().to_owned(),
    };
    let path = format!(
        "/v5/{}/{}",
        signer::encode(&options.project_id),
        req.path.trim_start_matches('/')
    );
    let mut headers = Vec::with_capacity(8);
    if let Some(region) = &req.region {
        headers.push(("region".to_owned(), region.clone()));
    }
    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    headers.push((signer::HEADER_DATE.to_owned(), sdk_date.to_owned()));
    headers.push(("User-Agent".to_owned(), options.user_agent.clone()));
    headers.push(("X-Project-Id".to_owned(), options.project_id.clone()));
    if let Some(token) = &credentials.security_token {
        headers.push((
            "X-Security-Token".to_owned(),
            token.expose_secret().to_owned(),
        ));
    }
    signer::prepare_headers(&mut headers, &host, sdk_date);
    let signature = signer::sign(
        credentials.access_key.expose_secret(),
        credentials.secret_key.expose_secret(),
        &SignableRequest {
            method: req.method.as_str(),
            path: &path,
            query: &req.query,
            headers: &headers,
            body: req.body.as_deref(),
        },
    )
    .expect("prepare_headers always sets X-Sdk-Date");
    headers.push(("Authorization".to_owned(), signature.authorization));

    let query = signer::canonical_query_string(&req.query);
    let mut url = format!("{}://{host}{path}", endpoint.scheme());
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    WireRequest {
        method: req.method.clone(),
        url,
        headers,
        body: req.body.clone(),
    }
}

/// A client for one target's HSS project. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HssClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    options: ClientOptions,
    credentials: CredentialProvider,
    limiter: SharedRateLimiter,
    observer: Arc<dyn ApiObserver>,
}

impl HssClient {
    pub fn new(
        options: ClientOptions,
        credentials: CredentialProvider,
        limiter: SharedRateLimiter,
    ) -> Result<Self, HssError> {
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout.min(Duration::from_secs(10)))
            // Signed headers must reach the gateway exactly as signed: no redirects, no
            // client-side rewriting; the SDK disables redirects too.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| HssError::Request {
                call: "client",
                detail: err.without_url().to_string(),
            })?;
        Ok(HssClient {
            inner: Arc::new(Inner {
                http,
                options,
                credentials,
                limiter,
                observer: Arc::new(NoObserver),
            }),
        })
    }

    /// Who learns of this client's calls.
    pub fn observer(&self) -> &Arc<dyn ApiObserver> {
        &self.inner.observer
    }

    /// The same client reporting to `observer`.
    pub fn with_observer(self, observer: Arc<dyn ApiObserver>) -> Self {
        let inner = &self.inner;
        HssClient {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                options: inner.options.clone(),
                credentials: inner.credentials.clone(),
                limiter: Arc::clone(&inner.limiter),
                observer,
            }),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// `query` with the target's enterprise project added, when it has one.
    pub(in crate::hss) fn with_project_scope(
        &self,
        mut query: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let eps = &self.inner.options.enterprise_project_id;
        if !eps.is_empty() {
            query.push(("enterprise_project_id".to_owned(), eps.clone()));
        }
        query
    }

    /// The `region` header value, for the calls that declare it.
    pub(in crate::hss) fn region(&self) -> Option<String> {
        Some(self.inner.options.region.clone())
    }

    /// Sends `req` (with the retries it allows) and reads the answer as JSON.
    pub(in crate::hss) async fn call_json<T: DeserializeOwned>(
        &self,
        req: &ApiRequest,
    ) -> Result<T, HssError> {
        self.call_json_with_id(req).await.map(|(value, _)| value)
    }

    /// [`HssClient::call_json`], with the answer's `X-Request-Id`.
    pub(in crate::hss) async fn call_json_with_id<T: DeserializeOwned>(
        &self,
        req: &ApiRequest,
    ) -> Result<(T, Option<String>), HssError> {
        // Decoding is part of the attempt, so that an unreadable answer to a GET is retried
        // like any other transient fault.
        let attempt = || async {
            let answer = self.attempt(req, &crate::hss::Ungated).await?;
            // UTF-8 is checked once for the whole body, which spares serde_json checking
            // each string of it (a tenth of the listing's parse); a body that is not UTF-8
            // gets serde_json's own error.
            let decoded = match std::str::from_utf8(&answer.body) {
                Ok(text) => serde_json::from_str::<T>(text),
                Err(_) => serde_json::from_slice::<T>(&answer.body),
            };
            match decoded {
                Ok(value) => Ok((value, answer.request_id)),
                Err(err) => Err(HssError::Malformed {
                    call: req.call,
                    status: answer.status,
                    request_id: answer.request_id,
                    detail: scrub(&err.to_string(), &req.secrets),
                    retryable: req.method == Method::GET,
                }),
            }
        };
        self.with_retries(req, attempt).await
    }

    /// For calls whose success answer has no fields (the SDK's models are empty).
    pub(in crate::hss) async fn call(&self, req: &ApiRequest) -> Result<Answer, HssError> {
        self.call_gated(req, &crate::hss::Ungated).await
    }

    /// [`HssClient::call`], with `gate` asked before every attempt goes on the wire.
    pub(in crate::hss) async fn call_gated(
        &self,
        req: &ApiRequest,
        gate: &dyn crate::hss::SendGate,
    ) -> Result<Answer, HssError> {
        self.with_retries(req, || self.attempt(req, gate)).await
    }

    async fn with_retries<T, F, Fut>(&self, req: &ApiRequest, attempt: F) -> Result<T, HssError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HssError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .with_max_times(self.inner.options.max_retries as usize);
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(HssError::is_retryable)
            .adjust(|err, delay| delay.map(|delay| pause_after(err, delay)))
            .notify(|err, delay| {
                self.inner.observer.retry(req.call, err.kind(), delay);
                tracing::warn!(call = req.call, error = %err, retry_in = ?delay, "HSS call failed; retrying");
            })
            .await
    }

    /// One attempt: wait for the rate limit, sign with current credentials, send, classify.
    async fn attempt(
        &self,
        req: &ApiRequest,
        gate: &dyn crate::hss::SendGate,
    ) -> Result<Answer, HssError> {
        let inner = &self.inner;
        inner.limiter.until_ready().await;
        let credentials = inner.credentials.current().await?;
        // Signed before the gate is asked, so that a request that goes out was signed while
        // the gate still allowed it: HSS's gateway accepts a signed request for only 15
        // minutes after its X-Sdk-Date, which bounds what a process paused between the
        // gate and the wire can still send when it wakes.
        let sdk_date = Utc::now().format(signer::DATE_FORMAT).to_string();
        let wire = build_wire_request(&inner.options, &credentials, req, &sdk_date);
        // Last, right before the wire: the waits above can be long.
        gate.may_send().await.map_err(|why| HssError::NotSent {
            call: req.call,
            why,
        })?;

        let mut builder = inner.http.request(wire.method.clone(), &wire.url);
        for (name, value) in &wire.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = wire.body {
            builder = builder.body(body);
        }
        let started = Instant::now();
        let result = send(builder, req, inner.options.request_timeout).await;
        let code = match &result {
            Ok(answer) => answer.status.to_string(),
            Err(HssError::Api(api)) => api.status.to_string(),
            Err(err) => err.kind().to_owned(),
        };
        let elapsed = started.elapsed();
        inner.observer.attempt(req.call, &code, elapsed);
        // The path only: the query of some calls carries a password.
        tracing::debug!(call = req.call, method = %req.method, path = %req.path, code, elapsed_ms = elapsed.as_millis() as u64, "HSS call");
        result
    }
}

/// A successful answer.
#[derive(Debug)]
pub(in crate::hss) struct Answer {
    status: u16,
    request_id: Option<String>,
    /// The server's clock when it answered (`Date`), in ms since the epoch.
    server_time_ms: Option<i64>,
    body: bytes::Bytes,
}

impl Answer {
    /// The server's clock when it answered, to match what HSS stamps with its own clock.
    pub(in crate::hss) fn server_time_ms(&self) -> Option<i64> {
        self.server_time_ms
    }
}

async fn send(
    builder: reqwest::RequestBuilder,
    req: &ApiRequest,
    timeout: Duration,
) -> Result<Answer, HssError> {
    let idempotent = req.method == Method::GET;
    let transport = |err: reqwest::Error| {
        let err = err.without_url();
        if err.is_timeout() {
            HssError::Timeout {
                call: req.call,
                after: timeout,
                retryable: idempotent,
            }
        } else if err.is_connect() {
            HssError::Connect {
                call: req.call,
                source: err,
            }
        } else {
            HssError::Transport {
                call: req.call,
                retryable: idempotent,
                source: err,
            }
        }
    };
    let resp = builder.send().await.map_err(transport)?;
    let status = resp.status().as_u16();
    let request_id = resp
        .headers()
        .get("X-Request-Id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let server_time_ms = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_millis()).ok());
    let body = read_body(resp, req, &transport).await?;
    if (200..300).contains(&status) {
        return Ok(Answer {
            status,
            request_id,
            server_time_ms,
            body,
        });
    }
    let (error_code, error_msg) = super::lenient::parse_error_body(&body).unwrap_or_else(|| {
        // As the SDK: the raw text is the message and the status stands in for the code.
        let text = String::from_utf8_lossy(&body);
        (status.to_string(), text.chars().take(300).collect())
    });
    let mut api = ApiError {
        call: req.call,
        status,
        error_code,
        error_msg: scrub(&error_msg, &req.secrets),
        request_id,
        retry_after,
        retryable: false,
    };
    api.retryable = api.is_throttling() || (status >= 500 && idempotent);
    Err(HssError::Api(Box::new(api)))
}

/// The most an answer may hold. A page of 200 images is about 200 KB; a server that sends
/// more is not read to the end, so memory stays bounded whatever it claims.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Reads an answer's body, up to [`MAX_ANSWER_BYTES`]. (The whole exchange, body included,
/// runs under the client's total timeout, so a trickled answer is bounded in time too.)
async fn read_body(
    mut resp: reqwest::Response,
    req: &ApiRequest,
    transport: &impl Fn(reqwest::Error) -> HssError,
) -> Result<bytes::Bytes, HssError> {
    let status = resp.status().as_u16();
    match body::read_capped(&mut resp, MAX_ANSWER_BYTES).await {
        Ok(body) => Ok(body),
        Err(BodyError::Transport(err)) => Err(transport(err)),
        Err(BodyError::TooLarge { limit }) => Err(HssError::Malformed {
            call: req.call,
            status,
            request_id: None,
            detail: format!(
                "the answer is larger than {} MiB; it was not read to the end",
                limit / (1024 * 1024)
            ),
            retryable: req.method == Method::GET,
        }),
    }
}

/// The pause before the next attempt. After throttling: at least [`THROTTLE_FLOOR`] and at
/// least `Retry-After`, plus up to a quarter more so that many clients do not return at once.
fn pause_after(err: &HssError, backoff: Duration) -> Duration {
    if !err.is_throttling() {
        return backoff;
    }
    let asked = err
        .api()
        .and_then(|api| api.retry_after)
        .unwrap_or_default()
        .min(RETRY_AFTER_CAP);
    let base = backoff.max(asked).max(THROTTLE_FLOOR);
    let spread = base.as_millis() as u64 / 4;
    base + Duration::from_millis(rand::random_range(0..=spread))
}

/// `Retry-After: 5` or `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Removes every secret, raw or as it appears percent-encoded in a query, from `text`.
pub(in crate::hss) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out
            .replace(secret.as_str(), "[redacted]")
            .replace(&signer::encode(secret), "[redacted]");
    }
    out
}

/// `body` serialised exactly as the SDK would (see [`wire_json`]).
pub(in crate::hss) fn to_body<T: serde::Serialize>(
    call: &'static str,
    body: &T,
) -> Result<Vec<u8>, HssError> {
    wire_json::to_vec(body).map_err(|err| HssError::Request {
        call,
        detail: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_endpoints_follow_the_region_table() {
        assert_eq!(
            default_endpoint("ap-southeast-1").unwrap().as_str(),
            "https://hss.ap-southeast-1.myhuaweicloud.com/"
        );
        assert_eq!(
            default_endpoint("eu-west-101").unwrap().as_str(),
            "https://hss.eu-west-101.myhuaweicloud.eu/"
        );
        assert!(default_endpoint("evil.com/x").is_err());
        assert!(default_endpoint("").is_err());
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    fn throttled(retry_after: Option<u64>) -> HssError {
        HssError::Api(Box::new(ApiError {
            call: "t",
            status: 429,
            error_code: "APIG.0308".into(),
            error_msg: String::new(),
            request_id: None,
            retry_after: retry_after.map(Duration::from_secs),
            retryable: true,
        }))
    }

    #[test]
    fn throttling_pauses_at_least_two_seconds_and_honours_retry_after() {
        for _ in 0..50 {
            let p = pause_after(&throttled(None), Duration::from_millis(250));
            assert!(p >= THROTTLE_FLOOR && p <= THROTTLE_FLOOR * 5 / 4, "{p:?}");
            let p = pause_after(&throttled(Some(9)), Duration::from_millis(250));
            assert!(
                p >= Duration::from_secs(9) && p <= Duration::from_millis(11_250),
                "{p:?}"
            );
            let p = pause_after(&throttled(Some(100_000)), Duration::ZERO);
            assert!(p <= RETRY_AFTER_CAP * 5 / 4, "capped: {p:?}");
        }
        let timeout = HssError::Timeout {
            call: "t",
            after: Duration::ZERO,
            retryable: true,
        };
        assert_eq!(
            pause_after(&timeout, Duration::from_millis(300)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn scrub_removes_raw_and_encoded_secrets() {
        let secrets = vec!["p@ss word".to_owned()];
        let text = "echo: password=p%40ss%20word and p@ss word";
        assert_eq!(
            scrub(text, &secrets),
            "echo: password=[redacted] and [redacted]"
        );
    }
}
