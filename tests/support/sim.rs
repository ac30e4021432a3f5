//! Starting the simulator on port 0 and talking to it with requests signed by the project's
//! own signer, the way the SDK signs them.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use hss_scand::hss::signer::{self, SignableRequest};
use hss_scand::sim::{SimConfig, SimHandle, spawn};
use serde_json::Value;

/// A simulator on a free loopback port.
pub async fn spawn_sim(config: SimConfig) -> SimHandle {
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
    spawn(config, listen).await.expect("the simulator starts")
}

/// A configuration for tests: an account of `images` whose scans finish at once, and
/// successfully, unless a test says otherwise.
pub fn test_config(images: usize) -> SimConfig {
    let mut config = SimConfig {
        images,
        ..SimConfig::default()
    };
    config.lifecycle.queue_delay = std::time::Duration::ZERO;
    config.lifecycle.scan_duration = std::time::Duration::ZERO;
    config.lifecycle.failure_rate = 0.0;
    config
}

/// One answer: status, headers, and the body both as text and (if it parses) as JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn error_code(&self) -> &str {
        self.json["error_code"].as_str().unwrap_or("")
    }

    pub fn error_msg(&self) -> &str {
        self.json["error_msg"].as_str().unwrap_or("")
    }
}

/// Signs requests like the SDK does. Every field is public so a test can break one thing:
/// a wrong `sk`, an old `date`, no signature at all.
#[derive(Debug, Clone)]
pub struct SimClient {
    pub base_url: String,
    pub ak: String,
    pub sk: String,
    pub project_id: String,
    pub security_token: Option<String>,
    /// The `X-Sdk-Date` to sign with; `None` means now.
    pub date: Option<DateTime<Utc>>,
    /// False: send the request without an `Authorization` header.
    pub sign: bool,
    /// Send these bytes instead of the body that was signed.
    pub tamper_body: Option<Vec<u8>>,
    pub http: reqwest::Client,
}

impl SimClient {
    pub fn new(sim: &SimHandle, config: &SimConfig) -> Self {
        Self {
            base_url: sim.base_url(),
            ak: config.ak.clone(),
            sk: config.sk.clone(),
            project_id: config.project_id.clone(),
            security_token: config.security_token.clone(),
            date: None,
            sign: true,
            tamper_body: None,
            http: reqwest::Client::new(),
        }
    }

    /// `GET /v5/{project_id}/{operation}?query`.
    pub async fn get(&self, operation: &str, query: &[(&str, &str)]) -> Reply {
        self.send("GET", operation, query, None).await
    }

    /// `POST /v5/{project_id}/{operation}` with a JSON body.
    pub async fn post(&self, operation: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("JSON serialises");
        self.send("POST", operation, &[], Some(bytes)).await
    }

    pub async fn send(
        &self,
        method: &str,
        operation: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        self.try_send(method, operation, query, body)
            .await
            .expect("the simulator answers")
    }

    /// [`SimClient::send`], with the transport error (a timeout, say, also one that fires
    /// while the body is still arriving) returned.
    pub async fn try_send(
        &self,
        method: &str,
        operation: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, reqwest::Error> {
        let path = format!("/v5/{}/{operation}", self.project_id);
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let host = self.base_url.trim_start_matches("http://").to_owned();
        let date = self
            .date
            .unwrap_or_else(Utc::now)
            .format(signer::DATE_FORMAT)
            .to_string();
        let mut headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Host".to_owned(), host),
            ("X-Project-Id".to_owned(), self.project_id.clone()),
            ("X-Sdk-Date".to_owned(), date),
        ];
        if let Some(token) = &self.security_token {
            headers.push(("X-Security-Token".to_owned(), token.clone()));
        }
        let signature = signer::sign(
            &self.ak,
            &self.sk,
            &SignableRequest {
                method,
                path: &path,
                query: &query,
                headers: &headers,
                body: body.as_deref(),
            },
        )
        .expect("the request has a date");

        let mut url = format!("{}{path}", self.base_url);
        let query_string = signer::canonical_query_string(&query);
        if !query_string.is_empty() {
            url = format!("{url}?{query_string}");
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, url);
        // reqwest sets Host itself from the URL, to the same value that was signed.
        for (name, value) in headers.iter().filter(|(n, _)| n != "Host") {
            request = request.header(name, value);
        }
        if self.sign {
            request = request.header("Authorization", signature.authorization);
        }
        if let Some(body) = self.tamper_body.clone().or(body) {
            request = request.body(body);
        }
        reply(request.send().await?).await
    }

    /// An unauthenticated admin request under `/sim/`.
    pub async fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self
            .http
            .request(method, format!("{}/sim/{path}", self.base_url));
        if let Some(body) = body {
            request = request.json(body);
        }
        reply(request.send().await.expect("the simulator answers"))
            .await
            .expect("a body")
    }
}

async fn reply(response: reqwest::Response) -> Result<Reply, reqwest::Error> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        headers,
        text,
        json,
    })
}
