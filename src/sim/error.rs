//! The error answers of the simulated gateway and service, in the shape the SDK's exception
//! handler reads first: `{"error_code": "...", "error_msg": "..."}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request parameter or body field failed validation.
pub const INVALID_PARAMETER: &str = "HSS.0001";
/// `image_info_list` holds more than 10241 items (or `image_info` more than the configured
/// maximum).
pub const REQUEST_TOO_LARGE: &str = "HSS.0006";
/// The requested resource (a task) does not exist.
pub const NOT_FOUND: &str = "HSS.0011";
/// Insufficient quota: pay-per-use image scanning is switched off, so a scan cannot be billed.
pub const NO_QUOTA: &str = "HSS.1002";
pub const INTERNAL_ERROR: &str = "HSS.0500";
pub const UNAVAILABLE: &str = "HSS.0503";
/// API Gateway: no such API (wrong path, method or project).
pub const API_NOT_FOUND: &str = "APIGW.0101";
/// API Gateway: the AK/SK signature did not verify.
pub const AUTH_FAILED: &str = "APIGW.0301";
/// API Gateway: throttled.
pub const THROTTLED: &str = "APIG.0308";

/// One error answer. Handlers return it; the router turns it into a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 naming the offending field, so a client's log says what to fix.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            INVALID_PARAMETER,
            format!("Invalid parameter {field}: {reason}"),
        )
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, REQUEST_TOO_LARGE, message)
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            NOT_FOUND,
            format!("The requested resource does not exist: {what}"),
        )
    }

    /// A scan asked for while pay-per-use image scanning is off.
    pub fn pay_per_scan_off() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            NO_QUOTA,
            "Insufficient quota: pay-per-use container image scanning is not enabled \
             (switch image_pay_per_scan is off)",
        )
    }

    pub fn api_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            API_NOT_FOUND,
            "The API does not exist or has not been published in the environment",
        )
    }

    pub fn auth_failed() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            AUTH_FAILED,
            "Incorrect IAM authentication information: verify aksk signature fail",
        )
    }

    pub fn throttled(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                THROTTLED,
                "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 second",
            )
        }
    }

    /// A server-side failure with the code and message usual for its status.
    pub fn server(status: StatusCode) -> Self {
        if status == StatusCode::SERVICE_UNAVAILABLE {
            Self::new(status, UNAVAILABLE, "Service temporarily unavailable")
        } else {
            Self::new(status, INTERNAL_ERROR, "Internal server error")
        }
    }

    /// An injected error with any status; an empty `code` gets the usual one for the status.
    pub fn injected(status: u16, code: &str, retry_after: Option<u64>) -> Self {
        // Informational statuses would confuse the HTTP layer; they are not errors anyway.
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = match status {
            StatusCode::TOO_MANY_REQUESTS => Self::throttled(retry_after.unwrap_or(1)),
            StatusCode::UNAUTHORIZED => Self::auth_failed(),
            StatusCode::NOT_FOUND => Self::api_not_found(),
            s if s.is_server_error() => Self::server(s),
            s => Self::new(s, INVALID_PARAMETER, "Injected client error"),
        };
        if !code.is_empty() {
            code.clone_into(&mut error.code);
        }
        error.retry_after = retry_after.or(error.retry_after);
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error_code": self.code, "error_msg": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_errors_default_their_code_by_status() {
        assert_eq!(ApiError::injected(503, "", None).code, UNAVAILABLE);
        assert_eq!(ApiError::injected(500, "", None).code, INTERNAL_ERROR);
        let throttled = ApiError::injected(429, "", Some(3));
        assert_eq!(
            (throttled.code.as_str(), throttled.retry_after),
            (THROTTLED, Some(3))
        );
        assert_eq!(ApiError::injected(502, "X.1", None).code, "X.1");
        assert_eq!(
            ApiError::injected(1000, "", None).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
