//! Where the AK/SK come from: the environment, files (systemd `LoadCredential`, Kubernetes
//! secrets), or the ECS metadata service's temporary keys for an agency bound to the VM
//! (spec section 5.4).
//!
//! Every key is a [`SecretString`]; `Debug` prints `[REDACTED]` and no error message of this
//! module contains a key, a token or the contents of a key file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;

use super::body::{self, BodyError};

pub const ENV_AK: &str = "HUAWEICLOUD_SDK_AK";
pub const ENV_SK: &str = "HUAWEICLOUD_SDK_SK";
pub const ENV_SECURITY_TOKEN: &str = "HUAWEICLOUD_SDK_SECURITY_TOKEN";

/// The metadata service's well-known address.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://169.254.169.254";
/// The SDK refreshes temporary keys when less than this remains.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(40 * 60);
/// Lifetime asked for the metadata session token.
const METADATA_TOKEN_TTL: Duration = Duration::from_secs(21_600);
/// While no session token could be had, ask again at most this often.
const METADATA_TOKEN_RETRY: Duration = Duration::from_secs(24 * 3600);
/// The text of the 401 that means "no agency is bound": a new token will not help.
/// The longest one exchange with the metadata service may take, trickled answer included.
pub const METADATA_DEADLINE: Duration = Duration::from_secs(10);
/// A session token or a key answer is a few hundred bytes; more is not the metadata service.
const METADATA_MAX_ANSWER: usize = 64 * 1024;
const AGENCY_NOT_CONFIGURED: &str = "Please configure Cloud Service Agency first";

/// One access key pair, possibly temporary.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: SecretString,
    pub secret_key: SecretString,
    /// Sent (and signed) as `X-Security-Token` with temporary keys.
    pub security_token: Option<SecretString>,
    /// When temporary keys stop working.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &"[REDACTED]")
            .field("secret_key", &"[REDACTED]")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Credentials {
    pub fn new(access_key: &str, secret_key: &str, security_token: Option<&str>) -> Self {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: security_token.map(Into::into),
            expires_at: None,
        }
    }

    fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| {
            at.signed_duration_since(now)
                .to_std()
                .map_or(true, |left| left < REFRESH_BEFORE_EXPIRY)
        })
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credentials: environment variable {0} is not set or empty")]
    MissingEnv(&'static str),
    #[error("credentials: cannot read {what} file {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials: {what} file {path} is empty")]
    EmptyFile { what: &'static str, path: PathBuf },
    #[error("credentials: ECS metadata service at {endpoint}: {detail}")]
    Metadata { endpoint: String, detail: String },
}

/// Hands out current credentials; cheap to clone and share between targets.
#[derive(Clone, Debug)]
pub struct CredentialProvider {
    inner: Arc<Source>,
}

#[derive(Debug)]
enum Source {
    Static(Arc<Credentials>),
    Metadata(MetadataSource),
}

impl CredentialProvider {
    /// Fixed keys, e.g. for tests or a caller that resolved them itself.
    pub fn fixed(credentials: Credentials) -> Self {
        CredentialProvider {
            inner: Arc::new(Source::Static(Arc::new(credentials))),
        }
    }

    /// `HUAWEICLOUD_SDK_AK`, `HUAWEICLOUD_SDK_SK` and optional `HUAWEICLOUD_SDK_SECURITY_TOKEN`.
    pub fn from_env() -> Result<Self, CredentialError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] over any variable lookup (the process environment in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let ak = get(ENV_AK).ok_or(CredentialError::MissingEnv(ENV_AK))?;
        let sk = get(ENV_SK).ok_or(CredentialError::MissingEnv(ENV_SK))?;
        let token = get(ENV_SECURITY_TOKEN);
        Ok(Self::fixed(Credentials::new(
            ak.trim(),
            sk.trim(),
            token.as_deref().map(str::trim),
        )))
    }

    /// Keys from files, one value per file; surrounding whitespace (the usual trailing newline)
    /// is ignored.
    pub fn from_files(ak: &Path, sk: &Path, token: Option<&Path>) -> Result<Self, CredentialError> {
        let ak = read_secret_file("access key", ak)?;
        let sk = read_secret_file("secret key", sk)?;
        let token = token
            .map(|path| read_secret_file("security token", path))
            .transpose()?;
        Ok(Self::fixed(Credentials {
            access_key: ak,
            secret_key: sk,
            security_token: token,
            expires_at: None,
        }))
    }

    /// Temporary keys of the ECS agency, from the metadata service at `endpoint`.
    pub fn metadata(endpoint: &url::Url) -> Self {
        CredentialProvider {
            inner: Arc::new(Source::Metadata(MetadataSource::new(endpoint))),
        }
    }

    /// Keys valid for at least the next request; refreshes temporary keys that have less than
    /// [`REFRESH_BEFORE_EXPIRY`] left.
    pub async fn current(&self) -> Result<Arc<Credentials>, CredentialError> {
        match &*self.inner {
            Source::Static(credentials) => Ok(Arc::clone(credentials)),
            Source::Metadata(source) => source.current().await,
        }
    }
}

fn read_secret_file(what: &'static str, path: &Path) -> Result<SecretString, CredentialError> {
    let text = std::fs::read_to_string(path).map_err(|source| CredentialError::File {
        what,
        path: path.to_owned(),
        source,
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(CredentialError::EmptyFile {
            what,
            path: path.to_owned(),
        });
    }
    Ok(value.into())
}

/// The ECS metadata flow: an optional session token (`PUT /meta-data/latest/api/token`), then
/// `GET /openstack/latest/securitykey`. One refresh at a time: the mutex makes concurrent
/// callers wait for the refresh in progress instead of starting their own.
#[derive(Debug)]
struct MetadataSource {
    http: reqwest::Client,
    endpoint: String,
    state: Mutex<MetadataState>,
}

#[derive(Debug, Default)]
struct MetadataState {
    credentials: Option<Arc<Credentials>>,
    token: Option<(SecretString, Instant)>,
    last_token_attempt: Option<Instant>,
}

impl MetadataSource {
    fn new(endpoint: &url::Url) -> Self {
        // The SDK's (3 s connect, 3 s read): the service is link-local, so slow means down.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .read_timeout(Duration::from_secs(3))
            // A server that trickles its answer resets the read timeout with every byte: the
            // whole exchange has a deadline of its own.
            .timeout(METADATA_DEADLINE)
            .no_proxy()
            .build()
            .unwrap_or_default();
        MetadataSource {
            http,
            endpoint: endpoint.as_str().trim_end_matches('/').to_owned(),
            state: Mutex::new(MetadataState::default()),
        }
    }

    fn error(&self, detail: impl Into<String>) -> CredentialError {
        CredentialError::Metadata {
            endpoint: self.endpoint.clone(),
            detail: detail.into(),
        }
    }

    async fn current(&self) -> Result<Arc<Credentials>, CredentialError> {
        let mut state = self.state.lock().await;
        let now = Utc::now();
        if let Some(held) = &state.credentials
            && !held.needs_refresh(now)
        {
            return Ok(Arc::clone(held));
        }
        match self.fetch(&mut state).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                state.credentials = Some(Arc::clone(&fresh));
                Ok(fresh)
            }
            // Keys that still work are better than none: use them and try again next time.
            Err(err) => match &state.credentials {
                Some(held) if !held.expired(now) => {
                    tracing::warn!(error = %err, "could not refresh temporary credentials; using the current ones until they expire");
                    Ok(Arc::clone(held))
                }
                _ => Err(err),
            },
        }
    }

    async fn fetch(&self, state: &mut MetadataState) -> Result<Credentials, CredentialError> {
        self.ensure_token(state, false).await;
        let (status, body) = self.get_security_key(state).await?;
        let (status, body) = if status == 401 && !body.contains(AGENCY_NOT_CONFIGURED) {
            // The session token may have expired early: get a new one and try once more.
            self.ensure_token(state, true).await;
            self.get_security_key(state).await?
        } else {
            (status, body)
        };
        if status >= 400 {
            let hint = if body.contains(AGENCY_NOT_CONFIGURED) {
                ": no agency is bound to this ECS instance"
            } else {
                ""
            };
            return Err(self.error(format!("securitykey answered HTTP {status}{hint}")));
        }
        parse_security_key(&body).map_err(|detail| self.error(detail))
    }

    /// Gets a session token when none is held (or `force`), but while the service has none
    /// to give, asks at most once a day.
    async fn ensure_token(&self, state: &mut MetadataState, force: bool) {
        let now = Instant::now();
        let fresh_enough = |fetched: &Instant| {
            now.duration_since(*fetched) < METADATA_TOKEN_TTL - Duration::from_secs(600)
        };
        if !force {
            if state.token.as_ref().is_some_and(|(_, at)| fresh_enough(at)) {
                return;
            }
            if state.token.is_none()
                && state
                    .last_token_attempt
                    .is_some_and(|at| now.duration_since(at) < METADATA_TOKEN_RETRY)
            {
                return;
            }
        }
        state.last_token_attempt = Some(now);
        state.token = None;
        let answer = self
            .http
            .put(format!("{}/meta-data/latest/api/token", self.endpoint))
            .header(
                "X-Metadata-Token-Ttl-Seconds",
                METADATA_TOKEN_TTL.as_secs().to_string(),
            )
            .send()
            .await;
        match answer {
            Ok(mut resp) if resp.status().is_success() => {
                match body::read_capped(&mut resp, METADATA_MAX_ANSWER).await {
                    Ok(token) if !String::from_utf8_lossy(&token).trim().is_empty() => {
                        let token = String::from_utf8_lossy(&token).trim().to_owned();
                        state.token = Some((token.into(), now));
                    }
                    _ => tracing::debug!(
                        "metadata token answer was empty or unreadable; going on without one"
                    ),
                }
            }
            // 404/405/503: this service has no session tokens; the SDK goes on without one.
            Ok(resp) => tracing::debug!(
                status = resp.status().as_u16(),
                "no metadata session token; going on without one"
            ),
            Err(err) => {
                tracing::debug!(error = %err.without_url(), "metadata token request failed; going on without one")
            }
        }
    }

    async fn get_security_key(
        &self,
        state: &MetadataState,
    ) -> Result<(u16, String), CredentialError> {
        let mut request = self
            .http
            .get(format!("{}/openstack/latest/securitykey", self.endpoint));
        if let Some((token, _)) = &state.token {
            request = request.header("X-Metadata-Token", token.expose_secret());
        }
        let mut resp = request.send().await.map_err(|err| {
            self.error(format!("securitykey request failed: {}", err.without_url()))
        })?;
        let status = resp.status().as_u16();
        let body = body::read_capped(&mut resp, METADATA_MAX_ANSWER)
            .await
            .map_err(|err| {
                self.error(match err {
                    BodyError::TooLarge { limit } => {
                        format!("securitykey answer is larger than {limit} bytes")
                    }
                    BodyError::Transport(err) => {
                        format!("securitykey answer unreadable: {}", err.without_url())
                    }
                })
            })?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// `{"credential": {"access": …, "secret": …, "securitytoken": …, "expires_at": …}}`, with
/// each key accepted in the spellings the SDK accepts.
fn parse_security_key(body: &str) -> Result<Credentials, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|_| "securitykey answer is not JSON".to_owned())?;
    let credential = value
        .get("credential")
        .ok_or("securitykey answer has no \"credential\" object")?;
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| credential.get(*name).and_then(Value::as_str))
            .filter(|v| !v.is_empty())
    };
    let access = field(&["access", "accessKeyId", "access_key_id"])
        .ok_or("securitykey answer has no access key")?;
    let secret = field(&["secret", "secretAccessKey", "secret_access_key"])
        .ok_or("securitykey answer has no secret key")?;
    let token = field(&["securitytoken", "securityToken", "security_token"])
        .ok_or("securitykey answer has no security token")?;
    let expires = field(&["expires_at", "expiration"]).ok_or("securitykey answer has no expiry")?;
    let expires_at = parse_expiry(expires)
        .ok_or_else(|| format!("securitykey expiry {expires:?} is not a UTC timestamp"))?;
    Ok(Credentials {
        access_key: access.into(),
        secret_key: secret.into(),
        security_token: Some(token.into()),
        expires_at: Some(expires_at),
    })
}

/// The SDK's `%Y-%m-%dT%H:%M:%S.%fZ`, and RFC 3339 for good measure.
fn parse_expiry(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.fZ")
        .map(|naive| naive.and_utc())
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lookup_requires_ak_and_sk_and_trims() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let err = CredentialProvider::from_lookup(vars(&[(ENV_AK, "ak")])).unwrap_err();
        assert!(err.to_string().contains(ENV_SK));
        let err =
            CredentialProvider::from_lookup(vars(&[(ENV_AK, " "), (ENV_SK, "s")])).unwrap_err();
        assert!(err.to_string().contains(ENV_AK));
        let provider = CredentialProvider::from_lookup(vars(&[
            (ENV_AK, "ak\n"),
            (ENV_SK, "sk"),
            (ENV_SECURITY_TOKEN, "t"),
        ]))
        .unwrap();
        let Source::Static(c) = &*provider.inner else {
            panic!("static")
        };
        assert_eq!(c.access_key.expose_secret(), "ak");
        assert_eq!(
            c.security_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            Some("t".into())
        );
    }

    #[test]
    fn debug_never_shows_a_key() {
        let c = Credentials::new("AKVISIBLE", "SKVISIBLE", Some("TOKVISIBLE"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("VISIBLE"), "{shown}");
    }

    #[test]
    fn security_key_accepts_every_spelling() {
        let a = parse_security_key(r#"{"credential":{"access":"A","secret":"S","securitytoken":"T","expires_at":"2024-03-15T09:15:00.000000Z"}}"#).unwrap();
        assert_eq!(
            a.expires_at.unwrap().to_rfc3339(),
            "2024-03-15T09:15:00+00:00"
        );
        let b = parse_security_key(r#"{"credential":{"accessKeyId":"A","secretAccessKey":"S","securityToken":"T","expiration":"2024-03-15T09:15:00Z"}}"#).unwrap();
        assert_eq!(b.access_key.expose_secret(), "A");
        let c = parse_security_key(r#"{"credential":{"access_key_id":"A","secret_access_key":"S","security_token":"T","expires_at":"2024-03-15T09:15:00.5Z"}}"#).unwrap();
        assert_eq!(c.security_token.unwrap().expose_secret(), "T");
        let err = parse_security_key(
            r#"{"credential":{"access":"SECRETA","secret":"SECRETS","expires_at":"x"}}"#,
        )
        .unwrap_err();
        assert!(!err.contains("SECRET"), "{err}");
    }

    #[test]
    fn refresh_threshold_is_forty_minutes() {
        let now = Utc::now();
        let mut c = Credentials::new("a", "s", None);
        assert!(!c.needs_refresh(now), "permanent keys never refresh");
        c.expires_at = Some(now + chrono::Duration::minutes(41));
        assert!(!c.needs_refresh(now));
        c.expires_at = Some(now + chrono::Duration::minutes(39));
        assert!(c.needs_refresh(now));
        assert!(!c.expired(now));
    }
}
