//! Credentials from files and from a fake ECS metadata service (spec section 5.4), and
//! temporary keys used end to end against the simulator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use chrono::{Duration as ChronoDuration, Utc};
use hss_scand::domain::ImageType;
use hss_scand::hss::legacy::LegacyApi;
use hss_scand::hss::legacy::model::ListSwrImages;
use hss_scand::hss::transport::credentials::CredentialProvider;
use hss_scand::sim::SimConfig;
use secrecy::ExposeSecret;

use crate::support::client::client_with_all;
use crate::support::sim::spawn_sim;

/// How the fake metadata service behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TokenMode {
    /// `PUT …/api/token` answers a token and `securitykey` requires it.
    Required,
    /// `PUT …/api/token` answers 404 (an older service); `securitykey` needs no token.
    Unsupported,
}

struct Fake {
    mode: TokenMode,
    /// Minutes of validity of each key pair handed out.
    valid_minutes: i64,
    token_calls: AtomicU32,
    key_calls: AtomicU32,
    /// Answer this many `securitykey` calls with 401 first.
    reject_first: AtomicU32,
    /// The 401 says no agency is bound.
    no_agency: bool,
}

impl Fake {
    fn new(mode: TokenMode, valid_minutes: i64) -> Self {
        Fake {
            mode,
            valid_minutes,
            token_calls: AtomicU32::new(0),
            key_calls: AtomicU32::new(0),
            reject_first: AtomicU32::new(0),
            no_agency: false,
        }
    }
}

async fn token(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> (StatusCode, String) {
    let n = fake.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
    if fake.mode == TokenMode::Unsupported {
        return (StatusCode::NOT_FOUND, String::new());
    }
    assert_eq!(
        headers
            .get("X-Metadata-Token-Ttl-Seconds")
            .and_then(|v| v.to_str().ok()),
        Some("21600")
    );
    (StatusCode::OK, format!("session-token-{n}"))
}

async fn security_key(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> (StatusCode, String) {
    let n = fake.key_calls.fetch_add(1, Ordering::SeqCst) + 1;
    if fake
        .reject_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
    {
        let body = if fake.no_agency {
            "Please configure Cloud Service Agency first"
        } else {
            "token expired"
        };
        return (StatusCode::UNAUTHORIZED, body.to_owned());
    }
    let token = headers
        .get("X-Metadata-Token")
        .and_then(|v| v.to_str().ok());
    let expected = format!("session-token-{}", fake.token_calls.load(Ordering::SeqCst));
    if fake.mode == TokenMode::Required && token != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "missing token".to_owned());
    }
    let expires = (Utc::now() + ChronoDuration::minutes(fake.valid_minutes))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let body = serde_json::json!({"credential": {
        "access": format!("TEMP-AK-{n}"), "secret": "TEMP-SK", "securitytoken": "TEMP-TOKEN",
        "expires_at": expires,
    }});
    (StatusCode::OK, body.to_string())
}

async fn serve(fake: Arc<Fake>) -> url::Url {
    let app = Router::new()
        .route("/meta-data/latest/api/token", put(token))
        .route("/openstack/latest/securitykey", get(security_key))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    url::Url::parse(&format!("http://{addr}")).expect("url")
}

#[tokio::test]
async fn metadata_keys_are_fetched_with_a_session_token_and_cached() {
    let fake = Arc::new(Fake::new(TokenMode::Required, 120));
    let provider = CredentialProvider::metadata(&serve(fake.clone()).await);
    let first = provider.current().await.expect("temporary keys");
    assert_eq!(first.access_key.expose_secret(), "TEMP-AK-1");
    assert_eq!(
        first
            .security_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        Some("TEMP-TOKEN".to_owned())
    );
    let again = provider.current().await.expect("cached");
    assert_eq!(again.access_key.expose_secret(), "TEMP-AK-1");
    assert_eq!(
        fake.key_calls.load(Ordering::SeqCst),
        1,
        "2 h left: no refresh"
    );
    assert_eq!(fake.token_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn keys_with_less_than_40_minutes_left_are_refreshed() {
    let fake = Arc::new(Fake::new(TokenMode::Required, 30));
    let provider = CredentialProvider::metadata(&serve(fake.clone()).await);
    provider.current().await.expect("first");
    let second = provider.current().await.expect("refreshed");
    assert_eq!(second.access_key.expose_secret(), "TEMP-AK-2");
    assert_eq!(fake.key_calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        fake.token_calls.load(Ordering::SeqCst),
        1,
        "the session token is reused"
    );
}

#[tokio::test]
async fn a_service_without_session_tokens_still_gives_keys() {
    let fake = Arc::new(Fake::new(TokenMode::Unsupported, 120));
    let provider = CredentialProvider::metadata(&serve(fake.clone()).await);
    provider.current().await.expect("keys without a token");
    // Keys valid for 2 h are cached; what is checked is that the 404 did not stop the flow.
    assert_eq!(fake.token_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_401_gets_a_new_session_token_and_one_more_try() {
    let fake = Arc::new(Fake::new(TokenMode::Required, 120));
    fake.reject_first.store(1, Ordering::SeqCst);
    let provider = CredentialProvider::metadata(&serve(fake.clone()).await);
    provider.current().await.expect("second try succeeds");
    assert_eq!(fake.token_calls.load(Ordering::SeqCst), 2);
    assert_eq!(fake.key_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn no_agency_is_reported_without_retrying() {
    let mut fake = Fake::new(TokenMode::Required, 120);
    fake.no_agency = true;
    fake.reject_first.store(5, Ordering::SeqCst);
    let fake = Arc::new(fake);
    let provider = CredentialProvider::metadata(&serve(fake.clone()).await);
    let err = provider.current().await.expect_err("no agency");
    assert!(err.to_string().contains("no agency is bound"), "{err}");
    assert_eq!(fake.key_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn temporary_keys_sign_requests_the_simulator_accepts() {
    let sim = spawn_sim(SimConfig::default()).await;
    sim.add_credential("TEMP-AK-1", "TEMP-SK", Some("TEMP-TOKEN"));
    let fake = Arc::new(Fake::new(TokenMode::Required, 120));
    let provider = CredentialProvider::metadata(&serve(fake).await);
    let limiter =
        hss_scand::hss::transport::client::rate_limiter(std::num::NonZeroU32::new(100).unwrap());
    let client = LegacyApi::new(client_with_all(&sim, provider, limiter, |_| {}));
    let page = client
        .list_swr_images(&ListSwrImages {
            image_type: ImageType::Private,
            offset: 0,
            limit: 5,
            enterprise_project_id: String::new(),
            latest_version: None,
            scan_status: None,
        })
        .await
        .expect("signed with the temporary keys and X-Security-Token");
    assert_eq!(page.images.len(), 5);
    assert_eq!(sim.stats().auth_failures, 0);
}

#[test]
fn key_files_are_read_trimmed_and_errors_name_the_file_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ak = dir.path().join("ak");
    let sk = dir.path().join("sk");
    std::fs::write(&ak, "FILE-AK\n").expect("write");
    std::fs::write(&sk, "  FILE-SK  \n").expect("write");
    let provider = CredentialProvider::from_files(&ak, &sk, None).expect("reads");
    let keys = futures::executor::block_on(provider.current()).expect("static");
    assert_eq!(keys.access_key.expose_secret(), "FILE-AK");
    assert_eq!(keys.secret_key.expose_secret(), "FILE-SK");

    std::fs::write(&sk, "\n").expect("write");
    let err = CredentialProvider::from_files(&ak, &sk, None).expect_err("empty");
    assert!(err.to_string().contains(&sk.display().to_string()), "{err}");
    let missing = dir.path().join("nope");
    let err = CredentialProvider::from_files(&ak, &missing, None).expect_err("missing");
    assert!(
        err.to_string().contains("nope") && !err.to_string().contains("FILE-AK"),
        "{err}"
    );
}
