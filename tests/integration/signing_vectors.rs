//! Every vector of `signing-vectors.json` (made by the official SDK's signer) through
//! `hss::signer`: canonical request, string to sign, signature and `Authorization` value, and
//! where the vector records them, the canonical parts and the headers the SDK added.

use hss_scand::hss::signer::{self, SignableRequest};
use serde_json::Value;

use crate::support::fixture;

struct Case {
    id: String,
    kind: Kind,
    ak: String,
    sk: String,
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    host: String,
    body: Option<Vec<u8>>,
    outputs: Value,
}

/// Who produced the vector, which decides which headers exist before signing.
#[derive(Debug, PartialEq)]
enum Kind {
    /// `Signer.sign` on a prepared request: the SDK adds X-Project-Id, X-Security-Token,
    /// X-Sdk-Content-Sha256 and Host before signing.
    PythonSigner,
    /// The Go SDK's known answers: exactly the given headers are signed, nothing is added.
    GoReference,
    /// A whole `HssClient` call: the wire headers (minus Authorization) are what was signed.
    EndToEnd,
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => panic!("unexpected scalar {other}"),
    }
}

fn query_of(list: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in list.as_array().expect("query_params is a list") {
        let key = str_of(&pair[0]);
        match &pair[1] {
            // A list value expands into repeated pairs, as the SDK does.
            Value::Array(values) => out.extend(values.iter().map(|v| (key.clone(), str_of(v)))),
            scalar => out.push((key, str_of(scalar))),
        }
    }
    out
}

fn headers_of(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .expect("headers are a list")
        .iter()
        .map(|h| (str_of(&h[0]), str_of(&h[1])))
        .collect()
}

fn body_of(is_null: &Value, hex_body: &Value) -> Option<Vec<u8>> {
    if is_null.as_bool() == Some(true) {
        return None;
    }
    Some(hex::decode(hex_body.as_str().unwrap_or("")).expect("body hex decodes"))
}

fn load() -> Vec<Case> {
    let text = std::fs::read_to_string(fixture("signing-vectors.json")).expect("fixture exists");
    let all: Vec<Value> = serde_json::from_str(&text).expect("fixture is JSON");
    all.into_iter()
        .filter(|v| v.get("id").is_some())
        .map(|v| {
            let i = &v["inputs"];
            let o = &v["outputs"];
            let (ak, sk) = (str_of(&i["ak"]), str_of(&i["sk"]));
            if let Some(wire_url) = o.get("wire_headers").and(o["wire_url"].as_str()) {
                let url = url::Url::parse(wire_url).expect("wire_url parses");
                let headers = headers_of(&o["wire_headers"])
                    .into_iter()
                    .filter(|(n, _)| n != "Authorization")
                    .collect();
                return Case {
                    id: str_of(&v["id"]),
                    kind: Kind::EndToEnd,
                    ak,
                    sk,
                    method: str_of(&o["wire_method"]),
                    path: url.path().to_owned(),
                    query: signer::parse_query(url.query().unwrap_or("")),
                    headers,
                    host: url[url::Position::BeforeHost..url::Position::AfterPort].to_owned(),
                    body: body_of(&o["wire_body_is_null"], &o["wire_body_hex"]),
                    outputs: o.clone(),
                };
            }
            let kind = if str_of(&v["signer"]).contains("reference_sign") {
                Kind::GoReference
            } else {
                Kind::PythonSigner
            };
            let mut headers = headers_of(&i["headers_in"]);
            if kind == Kind::PythonSigner {
                // What BasicCredentials.sign_request adds before the signer runs.
                if let Some(project) = i["project_id"].as_str() {
                    headers.push(("X-Project-Id".into(), project.into()));
                }
                if let Some(token) = i["security_token"].as_str() {
                    headers.push(("X-Security-Token".into(), token.into()));
                }
            }
            Case {
                id: str_of(&v["id"]),
                kind,
                ak,
                sk,
                method: str_of(&i["method"]),
                path: str_of(&i["resource_path"]),
                query: query_of(&i["query_params"]),
                headers,
                host: str_of(&i["host"]),
                body: body_of(&i["body_is_null"], &i["body_hex"]),
                outputs: o.clone(),
            }
        })
        .collect()
}

#[test]
fn all_22_vectors_are_present() {
    let cases = load();
    assert_eq!(cases.len(), 22);
    assert_eq!(cases.iter().filter(|c| c.kind == Kind::EndToEnd).count(), 5);
    assert_eq!(
        cases.iter().filter(|c| c.kind == Kind::GoReference).count(),
        2
    );
}

#[test]
fn every_vector_signs_exactly_as_the_sdk() {
    let mut failures = Vec::new();
    for mut case in load() {
        if case.kind == Kind::PythonSigner {
            let date = "19700101T000000Z"; // never used: every vector carries its X-Sdk-Date
            signer::prepare_headers(&mut case.headers, &case.host, date);
        }
        let req = SignableRequest {
            method: &case.method,
            path: &case.path,
            query: &case.query,
            headers: &case.headers,
            body: case.body.as_deref(),
        };
        let got = signer::sign(&case.ak, &case.sk, &req).expect("vector has a date");
        let o = &case.outputs;
        let mut check = |what: &str, got: &str| {
            if let Some(want) = o.get(what).and_then(Value::as_str)
                && want != got
            {
                failures.push(format!(
                    "{}: {what}\n  want {want:?}\n  got  {got:?}",
                    case.id
                ));
            }
        };
        check("canonical_request", &got.canonical_request);
        check("string_to_sign", &got.string_to_sign);
        check("signature", &got.signature);
        check("authorization", &got.authorization);
        check("signed_headers", &got.signed_headers);
        check("canonical_uri", &signer::canonical_uri(&case.path));
        check(
            "canonical_query_string",
            &signer::canonical_query_string(&case.query),
        );
        check(
            "canonical_headers",
            &signer::canonical_headers(&case.headers),
        );
        check(
            "payload_hash",
            &signer::payload_hash(&case.headers, case.body.as_deref()),
        );
        // Each of these four is in every vector; a missing one would make the check vacuous.
        for key in [
            "canonical_request",
            "string_to_sign",
            "signature",
            "authorization",
        ] {
            assert!(o.get(key).is_some(), "{}: vector lacks {key}", case.id);
        }
        if let Some(final_headers) = o.get("final_headers") {
            let mut want = headers_of(final_headers);
            want.retain(|(n, _)| n != "Authorization");
            if want != case.headers {
                failures.push(format!(
                    "{}: headers before Authorization\n  want {want:?}\n  got  {:?}",
                    case.id, case.headers
                ));
            }
        }
        if let Some(wire_url) = o.get("wire_url").and_then(Value::as_str) {
            let query = signer::canonical_query_string(&case.query);
            let scheme = if wire_url.starts_with("http://") {
                "http"
            } else {
                "https"
            };
            let host = case
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("host"))
                .map_or(case.host.as_str(), |(_, v)| v.as_str());
            let mut url = format!("{scheme}://{host}{}", case.path);
            if !query.is_empty() {
                url = format!("{url}?{query}");
            }
            if url != wire_url {
                failures.push(format!(
                    "{}: wire url\n  want {wire_url}\n  got  {url}",
                    case.id
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_changed_byte_changes_the_signature() {
    // Guards the test above against comparing a value with itself.
    let case = load()
        .into_iter()
        .find(|c| c.id == "upstream-py-post")
        .expect("vector");
    let mut headers = case.headers.clone();
    signer::prepare_headers(&mut headers, &case.host, "19700101T000000Z");
    let mut body = case.body.clone().expect("has a body");
    body[0] ^= 1;
    let req = SignableRequest {
        method: &case.method,
        path: &case.path,
        query: &case.query,
        headers: &headers,
        body: Some(&body),
    };
    let got = signer::sign(&case.ak, &case.sk, &req).expect("signs");
    assert_ne!(
        Some(got.signature.as_str()),
        case.outputs["signature"].as_str()
    );
}

/// The five `e2e-*` vectors are whole `HssClient` calls. Building the same calls with
/// `hss::transport::client::build_wire_request` must give the SDK's wire request to the byte: URL, every
/// header in order, body and `Authorization`.
mod client_requests {
    use hss_scand::domain::ImageType;
    use hss_scand::hss::legacy::model::{BatchScanItem, BatchScanRequest};
    use hss_scand::hss::transport::client::{ApiRequest, ClientOptions, build_wire_request};
    use hss_scand::hss::transport::credentials::Credentials;
    use hss_scand::hss::transport::wire_json;
    use reqwest::Method;
    use serde_json::Value;

    use super::{headers_of, str_of};
    use crate::support::fixture;

    fn vector(id: &str) -> Value {
        let text = std::fs::read_to_string(fixture("signing-vectors.json")).expect("fixture");
        let all: Vec<Value> = serde_json::from_str(&text).expect("json");
        all.into_iter()
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("vector {id}"))
    }

    /// The request the vector's SDK call made, from its request model: non-null fields only.
    fn query_from_model(model: &Value, skip: &[&str]) -> Vec<(String, String)> {
        model
            .as_object()
            .expect("model")
            .iter()
            .filter(|(k, v)| !v.is_null() && !skip.contains(&k.as_str()) && !v.is_object())
            .map(|(k, v)| (k.clone(), str_of(v)))
            .collect()
    }

    fn options(v: &Value) -> ClientOptions {
        let i = &v["inputs"];
        ClientOptions {
            endpoint: url::Url::parse(i["endpoint"].as_str().expect("endpoint")).expect("url"),
            region: String::new(),
            project_id: str_of(&i["project_id"]),
            enterprise_project_id: String::new(),
            request_timeout: std::time::Duration::from_secs(5),
            max_retries: 0,
            user_agent: format!(
                "huaweicloud-usdk-python/3.0; {}",
                str_of(&i["config.user_agent"])
            ),
        }
    }

    fn credentials(v: &Value) -> Credentials {
        let i = &v["inputs"];
        Credentials::new(
            &str_of(&i["ak"]),
            &str_of(&i["sk"]),
            i["security_token"].as_str(),
        )
    }

    fn check(id: &str, req: ApiRequest) {
        let v = vector(id);
        let o = &v["outputs"];
        let wire = build_wire_request(&options(&v), &credentials(&v), &req, "20240315T081500Z");
        assert_eq!(wire.method.as_str(), o["wire_method"], "{id}: method");
        assert_eq!(wire.url, o["wire_url"].as_str().expect("url"), "{id}: url");
        assert_eq!(
            wire.headers,
            headers_of(&o["wire_headers"]),
            "{id}: headers"
        );
        let want_body = o["wire_body_hex"]
            .as_str()
            .map(|h| hex::decode(h).expect("hex"));
        assert_eq!(wire.body, want_body, "{id}: body bytes");
    }

    #[test]
    fn batch_scan_body_is_the_sdks_to_the_byte() {
        let body = BatchScanRequest {
            image_info_list: vec![BatchScanItem {
                namespace: "ns",
                image_name: "app",
                image_version: "v1",
                instance_id: None,
                instance_url: None,
            }],
            operate_all: false,
            image_type: ImageType::Private,
        };
        check(
            "e2e-batch-scan-swr-image-deprecated",
            ApiRequest {
                call: "batch_scan",
                method: Method::POST,
                path: "image/batch-scan".into(),
                query: Vec::new(),
                body: Some(wire_json::to_vec(&body).expect("serialises")),
                region: None,
                secrets: Vec::new(),
            },
        );
    }

    #[test]
    fn a_get_with_a_query_matches() {
        let v = vector("e2e-list-registry-images");
        check(
            "e2e-list-registry-images",
            ApiRequest {
                call: "list_registry_images",
                method: Method::GET,
                path: "image/registries/images".into(),
                query: query_from_model(&v["inputs"]["request_model"], &[]),
                body: None,
                region: None,
                secrets: Vec::new(),
            },
        );
    }

    #[test]
    fn temporary_credentials_send_a_signed_security_token() {
        let v = vector("e2e-security-token");
        check(
            "e2e-security-token",
            ApiRequest {
                call: "list_image_scan_task",
                method: Method::GET,
                path: "image/tasks".into(),
                query: query_from_model(&v["inputs"]["request_model"], &[]),
                body: None,
                region: None,
                secrets: Vec::new(),
            },
        );
    }

    #[test]
    fn the_region_header_comes_first_and_is_signed() {
        let v = vector("e2e-create-manual-image-scan-task");
        let model = &v["inputs"]["request_model"];
        let body = hex::decode(v["outputs"]["wire_body_hex"].as_str().expect("hex")).expect("hex");
        check(
            "e2e-create-manual-image-scan-task",
            ApiRequest {
                call: "create_manual_image_scan_task",
                method: Method::POST,
                path: "image/image-scan/tasks".into(),
                query: query_from_model(model, &["region", "body"]),
                body: Some(body),
                region: model["region"].as_str().map(str::to_owned),
                secrets: Vec::new(),
            },
        );
    }

    #[test]
    fn an_encoded_path_parameter_is_sent_encoded() {
        let v = vector("e2e-stop-image-scan-task");
        let model = &v["inputs"]["request_model"];
        let task = hss_scand::hss::signer::encode(model["task_id"].as_str().expect("task"));
        check(
            "e2e-stop-image-scan-task",
            ApiRequest {
                call: "stop_image_scan_task",
                method: Method::PUT,
                path: format!("image/image-scan/tasks/{task}/stop"),
                query: Vec::new(),
                body: None,
                region: model["region"].as_str().map(str::to_owned),
                secrets: Vec::new(),
            },
        );
    }
}
