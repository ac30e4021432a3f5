//! AK/SK verification the way API Gateway does it: recompute the `SDK-HMAC-SHA256`
//! signature over the request exactly as received (method, raw path, query, the headers the
//! client listed as signed, the body bytes) and compare. The same signer module the daemon
//! signs with does the arithmetic, so a client bug that the real gateway would reject is
//! rejected here too, as long as the signer matches the SDK (its test vectors pin that).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{read, write};
use crate::hss::signer::{self, SignableRequest};

/// How far `X-Sdk-Date` may be from the server clock, as HSS's gateway documents it.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// Why a request was refused. Only for the simulator's own log: the client always gets the
/// gateway's single `APIGW.0301`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization header")]
    MissingAuthorization,
    #[error("Authorization is not an SDK-HMAC-SHA256 header")]
    Unparseable,
    #[error("unknown access key {0}")]
    UnknownAccessKey(String),
    #[error("X-Sdk-Date is not among the signed headers")]
    DateNotSigned,
    #[error("X-Sdk-Date {0:?} is not YYYYMMDDTHHMMSSZ")]
    BadDate(String),
    #[error("X-Sdk-Date is {0}s away from the server clock (at most {1}s allowed)")]
    Skewed(i64, i64),
    #[error("signed header {0} is not in the request")]
    MissingSignedHeader(String),
    #[error("signature does not match")]
    Mismatch,
    #[error("X-Security-Token is missing or wrong")]
    SecurityToken,
}

/// A request as received, before any parsing.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

struct Credential {
    sk: String,
    token: Option<String>,
}

/// The accepted key pairs: the configured one plus any added at run time.
pub(crate) struct Credentials {
    keys: RwLock<HashMap<String, Credential>>,
    /// Seconds `X-Sdk-Date` may be from the server clock.
    max_skew_secs: i64,
}

impl Credentials {
    pub fn new(ak: &str, sk: &str, token: Option<&str>) -> Self {
        let credentials = Self {
            keys: RwLock::new(HashMap::new()),
            max_skew_secs: MAX_CLOCK_SKEW.as_secs() as i64,
        };
        credentials.add(ak, sk, token);
        credentials
    }

    /// Accepts a request only while its `X-Sdk-Date` is within `max_skew` of the server
    /// clock; tests shorten it to see a paused client's signed request expire.
    pub fn with_max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew_secs = i64::try_from(max_skew.as_secs()).unwrap_or(i64::MAX);
        self
    }

    pub fn add(&self, ak: &str, sk: &str, token: Option<&str>) {
        write(&self.keys).insert(
            ak.to_owned(),
            Credential {
                sk: sk.to_owned(),
                token: token.map(str::to_owned),
            },
        );
    }

    /// Checks one request; `now` is the server clock.
    pub fn verify(&self, req: &ReceivedRequest<'_>, now: DateTime<Utc>) -> Result<(), AuthError> {
        let authorization =
            header_text(req.headers, "authorization").ok_or(AuthError::MissingAuthorization)?;
        let parsed = signer::parse_authorization(&authorization).ok_or(AuthError::Unparseable)?;
        let keys = read(&self.keys);
        let credential = keys
            .get(parsed.access_key)
            .ok_or_else(|| AuthError::UnknownAccessKey(parsed.access_key.to_owned()))?;

        if !parsed
            .signed_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(signer::HEADER_DATE))
        {
            return Err(AuthError::DateNotSigned);
        }
        let date = header_text(req.headers, signer::HEADER_DATE).ok_or_else(|| {
            AuthError::MissingSignedHeader(signer::HEADER_DATE.to_ascii_lowercase())
        })?;
        let signed_at = NaiveDateTime::parse_from_str(date.trim(), signer::DATE_FORMAT)
            .map_err(|_| AuthError::BadDate(date.clone()))?
            .and_utc();
        let skew = (now - signed_at).num_seconds();
        if skew.abs() > self.max_skew_secs {
            return Err(AuthError::Skewed(skew, self.max_skew_secs));
        }

        if let Some(token) = &credential.token {
            let sent = header_text(req.headers, "x-security-token");
            if !sent.is_some_and(|sent| constant_time_eq(sent.as_bytes(), token.as_bytes())) {
                return Err(AuthError::SecurityToken);
            }
        }

        // Only the headers the client says it signed take part, with the values received.
        let mut headers = Vec::with_capacity(parsed.signed_headers.len());
        for name in &parsed.signed_headers {
            let value = header_text(req.headers, name)
                .ok_or_else(|| AuthError::MissingSignedHeader((*name).to_owned()))?;
            headers.push(((*name).to_owned(), value));
        }
        let query = signer::parse_query(req.uri.query().unwrap_or(""));
        let signable = SignableRequest {
            method: req.method.as_str(),
            path: req.uri.path(),
            query: &query,
            headers: &headers,
            body: Some(req.body),
        };
        let expected =
            signer::sign(parsed.access_key, &credential.sk, &signable).map_err(|_| {
                AuthError::MissingSignedHeader(signer::HEADER_DATE.to_ascii_lowercase())
            })?;
        if constant_time_eq(expected.signature.as_bytes(), parsed.signature.as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::Mismatch)
        }
    }
}

/// A header's value as text; bytes that are not UTF-8 are replaced rather than refused, and
/// then simply fail to match the signature.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Compares without an early exit, so the time taken says nothing about where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn signed(ak: &str, sk: &str, date: &str, body: &[u8]) -> (Method, Uri, HeaderMap) {
        let uri: Uri = "/v5/p/image/swr-repository?limit=10&image_type=private_image"
            .parse()
            .unwrap();
        let mut pairs = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Host".to_owned(), "127.0.0.1:1".to_owned()),
            ("X-Sdk-Date".to_owned(), date.to_owned()),
        ];
        let query = signer::parse_query(uri.query().unwrap());
        let sig = signer::sign(
            ak,
            sk,
            &SignableRequest {
                method: "GET",
                path: uri.path(),
                query: &query,
                headers: &pairs,
                body: Some(body),
            },
        )
        .unwrap();
        pairs.push(("Authorization".to_owned(), sig.authorization));
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(&v).unwrap(),
            );
        }
        (Method::GET, uri, headers)
    }

    fn check(
        creds: &Credentials,
        parts: &(Method, Uri, HeaderMap),
        body: &[u8],
    ) -> Result<(), AuthError> {
        let now = NaiveDateTime::parse_from_str("20240315T081500Z", signer::DATE_FORMAT)
            .unwrap()
            .and_utc();
        creds.verify(
            &ReceivedRequest {
                method: &parts.0,
                uri: &parts.1,
                headers: &parts.2,
                body,
            },
            now,
        )
    }

    #[test]
    fn a_correct_signature_verifies_and_any_change_breaks_it() {
        let creds = Credentials::new("ak", "sk", None);
        let good = signed("ak", "sk", "20240315T081000Z", b"");
        assert_eq!(check(&creds, &good, b""), Ok(()));
        assert_eq!(check(&creds, &good, b"{}"), Err(AuthError::Mismatch));
        assert_eq!(
            check(&creds, &signed("ak", "other", "20240315T081000Z", b""), b""),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            check(&creds, &signed("nope", "sk", "20240315T081000Z", b""), b""),
            Err(AuthError::UnknownAccessKey("nope".into()))
        );
        assert!(matches!(
            check(&creds, &signed("ak", "sk", "20240315T075400Z", b""), b""),
            Err(AuthError::Skewed(1260, 900))
        ));
        let strict = Credentials::new("ak", "sk", None).with_max_skew(Duration::from_secs(60));
        assert!(matches!(
            check(&strict, &signed("ak", "sk", "20240315T080600Z", b""), b""),
            Err(AuthError::Skewed(_, 60))
        ));
        let mut tampered = good.clone();
        tampered.2.remove("host");
        assert_eq!(
            check(&creds, &tampered, b""),
            Err(AuthError::MissingSignedHeader("host".into()))
        );
    }

    #[test]
    fn a_credential_with_a_token_requires_it() {
        let creds = Credentials::new("ak", "sk", Some("tok"));
        let mut req = signed("ak", "sk", "20240315T081000Z", b"");
        assert_eq!(check(&creds, &req, b""), Err(AuthError::SecurityToken));
        req.2
            .insert("x-security-token", HeaderValue::from_static("tok"));
        assert_eq!(check(&creds, &req, b""), Ok(()));
    }
}
