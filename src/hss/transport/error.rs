//! The one error type of the HSS client. Every variant says which call failed, and
//! [`HssError::is_retryable`] / [`HssError::outcome_unknown`] say what a caller may do next.
//!
//! No variant ever holds a request URL: the upload-command call carries a password in its
//! query, so transport errors are stripped of their URL before they are stored here.

use std::time::Duration;

use super::credentials::CredentialError;

/// Error codes that mean "slow down": the gateway's throttling (both spellings) and HSS's own.
pub const THROTTLING_CODES: &[&str] = &["APIG.0308", "APIGW.0308", "HSS.0005"];
/// The gateway's "verify aksk signature fail".
pub const SIGNATURE_REJECTED: &str = "APIGW.0301";
/// HSS's "request too large": a batch over the item limit.
pub const REQUEST_TOO_LARGE: &str = "HSS.0006";
/// HSS's "invalid parameter".
pub const INVALID_PARAMETER: &str = "HSS.0001";
/// The gateway's "the API does not exist or has not been published in the environment".
pub const API_NOT_FOUND: &str = "APIGW.0101";

/// An answer from HSS (or its gateway) that was not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The call, in the operator's words (`list_swr_images`, `batch_scan`, …).
    pub call: &'static str,
    pub status: u16,
    /// `error_code` from the body, or the HTTP status when the body had none (as the SDK does).
    pub error_code: String,
    pub error_msg: String,
    /// The `X-Request-Id` response header, which Huawei support asks for.
    pub request_id: Option<String>,
    /// `Retry-After`, when the answer carried one.
    pub retry_after: Option<Duration>,
    /// Whether sending the same request again may succeed.
    pub retryable: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: HSS answered HTTP {} {}",
            self.call, self.status, self.error_code
        )?;
        if !self.error_msg.is_empty() {
            write!(f, ": {}", self.error_msg)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl ApiError {
    pub fn is_throttling(&self) -> bool {
        self.status == 429 || THROTTLING_CODES.contains(&self.error_code.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HssError {
    #[error("{0}")]
    Api(Box<ApiError>),

    /// No answer in time. For a POST the body may have been received and acted on.
    #[error("{call}: no answer from HSS within {after:?}")]
    Timeout {
        call: &'static str,
        after: Duration,
        retryable: bool,
    },

    /// The connection could not be made: nothing was sent, so any call may be retried.
    #[error("{call}: could not connect to HSS: {source}")]
    Connect {
        call: &'static str,
        #[source]
        source: reqwest::Error,
    },

    /// The connection broke after the request may have been sent.
    #[error("{call}: the connection to HSS failed: {source}")]
    Transport {
        call: &'static str,
        retryable: bool,
        #[source]
        source: reqwest::Error,
    },

    /// HSS answered with a body that is not what the API documents.
    #[error("{call}: could not read HSS's answer (HTTP {status}{}): {detail}", request_id.as_deref().map(|id| format!(", request id {id}")).unwrap_or_default())]
    Malformed {
        call: &'static str,
        status: u16,
        request_id: Option<String>,
        detail: String,
        retryable: bool,
    },

    /// `/image/synchronize` answered HTTP 200 with a non-zero `error_code` in its body.
    #[error("{call}: HSS reported error_code {error_code} in a 200 answer: {description}")]
    FailedInBody {
        call: &'static str,
        error_code: i64,
        description: String,
        request_id: Option<String>,
    },

    #[error(transparent)]
    Credentials(#[from] CredentialError),

    /// A request that could not even be built (a body that does not serialise).
    #[error("{call}: could not build the request: {detail}")]
    Request { call: &'static str, detail: String },

    /// The call's gate closed before it went on the wire: nothing was sent.
    #[error("{call}: not sent: {why}")]
    NotSent { call: &'static str, why: String },
}

impl HssError {
    /// Whether sending the same request again may succeed and is safe: throttling always;
    /// 5xx, timeouts and broken connections only for calls without side effects.
    pub fn is_retryable(&self) -> bool {
        match self {
            HssError::Api(api) => api.retryable,
            HssError::Timeout { retryable, .. }
            | HssError::Transport { retryable, .. }
            | HssError::Malformed { retryable, .. } => *retryable,
            HssError::Connect { .. } => true,
            HssError::FailedInBody { .. }
            | HssError::Credentials(_)
            | HssError::Request { .. }
            | HssError::NotSent { .. } => false,
        }
    }

    /// Whether HSS may have acted on the request although this error came back (a timeout, a
    /// broken connection or a 5xx after the body was sent). A batch that failed this way must
    /// not be resent blindly: the next sync shows whether its images moved.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            HssError::Api(api) => api.status >= 500,
            HssError::Timeout { .. } | HssError::Transport { .. } => true,
            HssError::Connect { .. }
            | HssError::Malformed { .. }
            | HssError::FailedInBody { .. }
            | HssError::Credentials(_)
            | HssError::Request { .. }
            | HssError::NotSent { .. } => false,
        }
    }

    pub fn api(&self) -> Option<&ApiError> {
        match self {
            HssError::Api(api) => Some(api),
            _ => None,
        }
    }

    /// The `error_code` HSS sent, if it sent one.
    pub fn error_code(&self) -> Option<&str> {
        self.api().map(|api| api.error_code.as_str())
    }

    pub fn is_throttling(&self) -> bool {
        self.api().is_some_and(ApiError::is_throttling)
    }

    /// `HSS.0006`: the batch is too large and should be split.
    pub fn is_request_too_large(&self) -> bool {
        self.error_code() == Some(REQUEST_TOO_LARGE)
    }

    /// The gateway's answer for an API it does not have (HTTP 404 `APIGW.0101`): in an HSS
    /// region, an API generation that does not exist there. Nothing reached HSS.
    pub fn is_api_missing(&self) -> bool {
        self.api()
            .is_some_and(|api| api.status == 404 && api.error_code == API_NOT_FOUND)
    }

    /// A short label for metrics and logs: `throttled`, `server_error`, `timeout`, …
    /// Every value [`HssError::kind`] returns, for metrics that start each at zero.
    pub const KINDS: [&'static str; 11] = [
        "throttled",
        "server_error",
        "client_error",
        "timeout",
        "connect",
        "transport",
        "malformed",
        "failed_in_body",
        "credentials",
        "request",
        "not_sent",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            HssError::Api(api) if api.is_throttling() => "throttled",
            HssError::Api(api) if api.status >= 500 => "server_error",
            HssError::Api(_) => "client_error",
            HssError::Timeout { .. } => "timeout",
            HssError::Connect { .. } => "connect",
            HssError::Transport { .. } => "transport",
            HssError::Malformed { .. } => "malformed",
            HssError::FailedInBody { .. } => "failed_in_body",
            HssError::Credentials(_) => "credentials",
            HssError::Request { .. } => "request",
            HssError::NotSent { .. } => "not_sent",
        }
    }
}
