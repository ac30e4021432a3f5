//! `SDK-HMAC-SHA256`, the request signature of Huawei Cloud API Gateway, as the official
//! Python SDK (`huaweicloudsdkcore.signer.Signer`) computes it. Pure functions only: the
//! caller supplies the clock, the credentials and the exact bytes that go on the wire.
//!
//! The steps follow `spec/hss-api.md` section 3. Where the Python and Go SDKs differ, this
//! module does what Python does (decode the path before re-encoding it, sort the query on the
//! raw strings, sign every header that is sent), because that is what the gateway was seen to
//! accept from the SDK most people use; the test vectors in `tests/fixtures` pin each quirk.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// The algorithm name, first line of the string to sign and first word of `Authorization`.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// Header carrying the request time, `YYYYMMDDTHHMMSSZ`.
pub const HEADER_DATE: &str = "X-Sdk-Date";
/// Header the SDK adds for bodies that are neither JSON nor BSON.
pub const HEADER_CONTENT_SHA256: &str = "X-Sdk-Content-Sha256";
/// Value of [`HEADER_CONTENT_SHA256`]: the body is not hashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty string: the payload hash of a request without a body.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// `strftime` format of [`HEADER_DATE`].
pub const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Everything except `A-Z a-z 0-9 - _ . ~` is percent-encoded, with upper-case hex
/// (Python's `quote(s, safe='~')`). Used for path segments, query keys and query values alike.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One request as it will be sent: every header that goes on the wire except `Authorization`.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// The path exactly as sent, already percent-encoded (`/v5/p/image/a%2Fb`).
    pub path: &'a str,
    /// Raw (not encoded) query pairs, in any order; repeated keys are allowed.
    pub query: &'a [(String, String)],
    /// Header names in any case, values as they will be sent.
    pub headers: &'a [(String, String)],
    /// `None` and `Some(b"")` both mean "no body".
    pub body: Option<&'a [u8]>,
}

/// The intermediate results of signing, kept so tests and error reports can show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub signature: String,
    pub authorization: String,
}

/// Percent-encodes one path segment, query key or query value.
pub fn encode(raw: &str) -> String {
    utf8_percent_encode(raw, ENCODE).to_string()
}

/// Step 6: decode the whole path, re-encode each segment, and make sure it ends in `/`.
///
/// Decoding first is the Python SDK's quirk: a `%2F` inside a segment is signed as a real `/`.
pub fn canonical_uri(path: &str) -> String {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let mut uri = decoded.split('/').map(encode).collect::<Vec<_>>().join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Step 7: sort on the raw key, then the raw value, then encode and join.
///
/// The sort is on the raw strings (UTF-8 byte order equals Python's code-point order), not on
/// their encodings: `k~` sorts before `ké` although `k%C3%A9` < `k~`. The result is also the
/// query string to put on the wire, so that what is signed is what is sent.
pub fn canonical_query_string(query: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = query.iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The headers that take part in the signature: lower-cased names, sorted, values trimmed.
/// A header whose name contains `_` is sent but never signed (some proxies drop such headers).
fn signable_headers(headers: &[(String, String)]) -> Vec<(String, &str)> {
    let mut signable: Vec<(String, &str)> = headers
        .iter()
        .filter(|(name, _)| !name.contains('_'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    signable.sort_by(|a, b| a.0.cmp(&b.0));
    signable
}

/// Step 4: `content-type;host;x-sdk-date`.
pub fn signed_headers(headers: &[(String, String)]) -> String {
    signable_headers(headers)
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// Step 5: one `name:value\n` line per signed header.
pub fn canonical_headers(headers: &[(String, String)]) -> String {
    signable_headers(headers)
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect()
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Step 8: the empty hash for no body; `UNSIGNED-PAYLOAD` when the SDK marked the body so;
/// otherwise the hex SHA-256 of the exact body bytes (`{}` is a body and gets hashed).
pub fn payload_hash(headers: &[(String, String)], body: Option<&[u8]>) -> String {
    match body {
        None | Some([]) => EMPTY_PAYLOAD_SHA256.to_owned(),
        Some(bytes) => match header(headers, HEADER_CONTENT_SHA256) {
            Some(value) => value.to_owned(),
            None => hex::encode(Sha256::digest(bytes)),
        },
    }
}

/// Step 9.
pub fn canonical_request(req: &SignableRequest<'_>) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query_string(req.query),
        canonical_headers(req.headers),
        signed_headers(req.headers),
        payload_hash(req.headers, req.body),
    )
}

/// Step 10.
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// Step 11: HMAC-SHA256 keyed with the secret key itself; there is no key derivation.
pub fn signature(secret_key: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Step 12.
pub fn authorization(access_key: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// Error of [`sign`]: the request carries no `X-Sdk-Date`, so there is nothing to sign with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request has no X-Sdk-Date header to sign")]
pub struct MissingDate;

/// Steps 4 to 12 over the headers exactly as given. Call [`prepare_headers`] first to get the
/// headers the Python SDK would have added.
pub fn sign(
    access_key: &str,
    secret_key: &str,
    req: &SignableRequest<'_>,
) -> Result<Signature, MissingDate> {
    let date = header(req.headers, HEADER_DATE).ok_or(MissingDate)?.trim();
    let canonical_request = canonical_request(req);
    let string_to_sign = string_to_sign(date, &canonical_request);
    let signature = signature(secret_key, &string_to_sign);
    let signed_headers = signed_headers(req.headers);
    let authorization = authorization(access_key, &signed_headers, &signature);
    Ok(Signature {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
        authorization,
    })
}

/// Steps 1 to 3: the headers the SDK's signer adds before signing, in the order it adds them,
/// after trimming every value.
///
/// * `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` when a `Content-Type` is set that is neither
///   `application/json` nor `application/bson`;
/// * `X-Sdk-Date: <sdk_date>` unless the request already has one;
/// * `Host: <host>` unless the request already has one (`host` keeps any explicit port).
pub fn prepare_headers(headers: &mut Vec<(String, String)>, host: &str, sdk_date: &str) {
    // The SDK sends the trimmed value it signed, so the wire never differs from the signature.
    for (_, value) in headers.iter_mut() {
        if value.trim().len() != value.len() {
            *value = value.trim().to_owned();
        }
    }
    if let Some(content_type) = header(headers, "Content-Type")
        && !content_type.starts_with("application/json")
        && !content_type.starts_with("application/bson")
    {
        headers.push((
            HEADER_CONTENT_SHA256.to_owned(),
            UNSIGNED_PAYLOAD.to_owned(),
        ));
    }
    if header(headers, HEADER_DATE).is_none() {
        headers.push((HEADER_DATE.to_owned(), sdk_date.to_owned()));
    }
    if header(headers, "Host").is_none() {
        headers.push(("Host".to_owned(), host.to_owned()));
    }
}

/// The parts of an `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…`
/// header, for a server that verifies requests (the simulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization<'a> {
    pub access_key: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

/// Parses an `Authorization` header value; `None` when it is not an `SDK-HMAC-SHA256` one.
pub fn parse_authorization(value: &str) -> Option<ParsedAuthorization<'_>> {
    let rest = value.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let (mut access_key, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, val) = part.trim().split_once('=')?;
        match key {
            "Access" => access_key = Some(val),
            "SignedHeaders" => signed = Some(val),
            "Signature" => signature = Some(val),
            _ => return None,
        }
    }
    Some(ParsedAuthorization {
        access_key: access_key.filter(|v| !v.is_empty())?,
        signed_headers: signed?.split(';').filter(|h| !h.is_empty()).collect(),
        signature: signature.filter(|v| !v.is_empty())?,
    })
}

/// Splits a raw query string into decoded pairs, the inverse of [`canonical_query_string`].
/// Only `%XX` is decoded: the SDK never encodes a space as `+`, so a `+` is a plus.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().into_owned(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn uri_gets_exactly_one_trailing_slash() {
        assert_eq!(canonical_uri("/v5/p/image"), "/v5/p/image/");
        assert_eq!(canonical_uri("/v5/p/image/"), "/v5/p/image/");
        assert_eq!(canonical_uri("/"), "/");
    }

    #[test]
    fn encoded_slash_in_a_segment_is_signed_as_a_slash() {
        assert_eq!(canonical_uri("/a/b%2Fc d"), "/a/b/c%20d/");
    }

    #[test]
    fn query_sorts_raw_strings_not_encodings() {
        let q = pairs(&[("ké", "1"), ("k~", "2"), ("a", "10"), ("a", "2"), ("e", "")]);
        assert_eq!(
            canonical_query_string(&q),
            "a=10&a=2&e=&k~=2&k%C3%A9=1",
            "'10' sorts before '2' as text; 'k~' before 'ké' on raw code points"
        );
    }

    #[test]
    fn query_encoding_is_strict() {
        let q = pairs(&[("x", "a b/c:d=e&f+g*h%")]);
        assert_eq!(
            canonical_query_string(&q),
            "x=a%20b%2Fc%3Ad%3De%26f%2Bg%2Ah%25"
        );
    }

    #[test]
    fn parse_query_inverts_canonical_query_string() {
        let q = pairs(&[
            ("name", "team a/app:v1=x&y"),
            ("reg", "仓库 é+*%"),
            ("e", ""),
        ]);
        let mut back = parse_query(&canonical_query_string(&q));
        let mut want = q.clone();
        back.sort();
        want.sort();
        assert_eq!(back, want);
    }

    #[test]
    fn payload_hash_rules() {
        let json = pairs(&[("Content-Type", "application/json")]);
        assert_eq!(payload_hash(&json, None), EMPTY_PAYLOAD_SHA256);
        assert_eq!(payload_hash(&json, Some(b"")), EMPTY_PAYLOAD_SHA256);
        assert_eq!(
            payload_hash(&json, Some(b"{}")),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let mut octet = pairs(&[("Content-Type", "application/octet-stream")]);
        prepare_headers(&mut octet, "h", "20240315T081500Z");
        assert_eq!(payload_hash(&octet, Some(b"x")), UNSIGNED_PAYLOAD);
        assert_eq!(payload_hash(&octet, None), EMPTY_PAYLOAD_SHA256);
    }

    #[test]
    fn prepare_headers_keeps_an_explicit_host_and_date() {
        let mut h = pairs(&[("host", "a:8443"), ("x-sdk-date", "20200101T000000Z")]);
        prepare_headers(&mut h, "b", "20990101T000000Z");
        assert_eq!(h.len(), 2);
        let mut h = Vec::new();
        prepare_headers(&mut h, "b:1", "20990101T000000Z");
        assert_eq!(
            h,
            pairs(&[("X-Sdk-Date", "20990101T000000Z"), ("Host", "b:1")])
        );
    }

    #[test]
    fn authorization_round_trips_through_the_parser() {
        let value = authorization("AK", "host;x-sdk-date", "abc123");
        let parsed = parse_authorization(&value).expect("parses");
        assert_eq!(parsed.access_key, "AK");
        assert_eq!(parsed.signed_headers, vec!["host", "x-sdk-date"]);
        assert_eq!(parsed.signature, "abc123");
        assert!(parse_authorization("Bearer x").is_none());
        assert!(
            parse_authorization("SDK-HMAC-SHA256 Access=, SignedHeaders=h, Signature=s").is_none()
        );
        assert!(parse_authorization("SDK-HMAC-SHA256 Access=a, Signature=s").is_none());
    }

    #[test]
    fn sign_without_a_date_is_an_error() {
        let req = SignableRequest {
            method: "GET",
            path: "/",
            query: &[],
            headers: &[],
            body: None,
        };
        assert_eq!(sign("a", "s", &req), Err(MissingDate));
    }
}
