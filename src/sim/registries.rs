//! Third-party registries (`add_registry`, `list_registry`) and the scanner upload command.
//! The registry password is validated and then dropped: HSS says it does not store it, and
//! neither does the simulator, so it can never leak into a listing or a log.
//!
//! A connected registry's images live in the account ([`Dataset`](super::dataset::Dataset)),
//! under a registry slot with the same id and name; this module keeps only what
//! `list_registry` shows about the connection. The SWR registries are not listed here:
//! `list_registry` was only ever seen listing what `add_registry` added.

use serde::Serialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::names::hash;
use super::params::{Fields, Query, json_object};

/// One stored registry, as `list_registry` returns it (`RegistryInfo`).
#[derive(Debug, Clone, Serialize)]
pub struct Registry {
    pub id: String,
    pub registry_name: String,
    pub registry_type: String,
    pub api_version: String,
    pub protocol: String,
    pub registry_addr: String,
    pub registry_username: String,
    pub namespace: String,
    pub connect_cluster_id: String,
    pub get_scan_image_channel: String,
    pub status: &'static str,
    pub images_num: u32,
    pub latest_sync_time: i64,
}

/// What the account knows about a registry's images: how many, and the last sync.
pub type ImageCounts<'a> = &'a dyn Fn(&str) -> (u32, i64);

#[derive(Debug, Default)]
pub struct Registries {
    items: Vec<Registry>,
    seed: u64,
}

impl Registries {
    pub fn new(seed: u64) -> Self {
        Self {
            items: Vec::new(),
            seed,
        }
    }

    /// Validates an `AddRegistryRequestBody` field by field, in the documented order, and
    /// stores it; returns the stored registry.
    pub fn add(&mut self, body: &[u8], now_ms: i64) -> Result<Registry, ApiError> {
        let map = json_object(body)?;
        let f = Fields::new(&map, "");
        let registry_name = f.required("registry_name", 1..=128)?;
        let registry_type = f.one_of("registry_type", &["Harbor", "Jfrog"])?;
        let api_version = f.one_of("api_version", &["V1", "V2"])?;
        let protocol = f.one_of("protocol", &["http", "https"])?;
        let registry_addr = f.required("registry_addr", 1..=256)?;
        check_host_port(registry_addr)?;
        let registry_username = f.required("registry_username", 1..=128)?;
        f.required("registry_password", 1..=128)?;
        let namespace = f.string("namespace", 1..=128)?;
        let connect_cluster_id = f.required("connect_cluster_id", 1..=64)?;
        let channel = f.one_of("get_scan_image_channel", &["Swr", "Other"])?;
        if channel == "Other" && namespace.is_none() {
            return Err(ApiError::invalid(
                "namespace",
                "is required when get_scan_image_channel is Other",
            ));
        }
        if self.items.iter().any(|r| r.registry_name == registry_name) {
            return Err(ApiError::invalid("registry_name", "already exists"));
        }
        // The three SWR registries are named alike; a third-party one may not take their names.
        if registry_name.starts_with("SWR-") {
            return Err(ApiError::invalid("registry_name", "already exists"));
        }
        let registry = Registry {
            id: self.next_id(),
            registry_name: registry_name.to_owned(),
            registry_type: registry_type.to_owned(),
            api_version: api_version.to_owned(),
            protocol: protocol.to_owned(),
            registry_addr: registry_addr.to_owned(),
            registry_username: registry_username.to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            connect_cluster_id: connect_cluster_id.to_owned(),
            get_scan_image_channel: channel.to_owned(),
            status: "success",
            images_num: 0,
            latest_sync_time: now_ms,
        };
        self.items.push(registry.clone());
        Ok(registry)
    }

    fn next_id(&self) -> String {
        let n = self.items.len() as u64;
        let h = hash(self.seed, n, 0x7265_6769);
        format!(
            "{:08x}-{:04x}-{:04x}-{:012x}",
            h >> 32,
            (h >> 16) & 0xffff,
            h & 0xffff,
            n
        )
    }

    /// A registry connected before the simulator started (`--third-party-registries`):
    /// `harbor-01`, `jfrog-02`, `harbor-03`, … alternating types.
    pub fn preconnect(&mut self, now_ms: i64) -> Registry {
        let n = self.items.len() + 1;
        let kind = if n % 2 == 1 { "Harbor" } else { "Jfrog" };
        let registry = Registry {
            id: self.next_id(),
            registry_name: format!("{}-{n:02}", kind.to_ascii_lowercase()),
            registry_type: kind.to_owned(),
            api_version: "V2".to_owned(),
            protocol: "https".to_owned(),
            registry_addr: format!(
                "{}-{n:02}.registry.sim.invalid:443",
                kind.to_ascii_lowercase()
            ),
            registry_username: "robot".to_owned(),
            namespace: String::new(),
            connect_cluster_id: "cluster-sim".to_owned(),
            get_scan_image_channel: "Swr".to_owned(),
            status: "success",
            images_num: 0,
            latest_sync_time: now_ms,
        };
        self.items.push(registry.clone());
        registry
    }

    /// `list_registry`: offset 0..=2e6, limit 10..=200 (default 10), optional filters;
    /// `images_num` and `latest_sync_time` come from the account.
    pub fn list(&self, query: &Query, counts: ImageCounts<'_>) -> Result<Value, ApiError> {
        let offset = query.int("offset", 0..=2_000_000, 0)? as usize;
        let limit = query.int("limit", 10..=200, 10)? as usize;
        let name = query.string("registry_name", 1..=128)?;
        let id = query.string("registry_id", 1..=64)?;
        let addr = query.string("registry_addr", 1..=256)?;
        let types = query.string("registry_type", 1..=256)?;
        let known = [
            "Harbor",
            "Jfrog",
            "SwrPrivate",
            "SwrShared",
            "SwrEnterprise",
            "Other",
        ];
        if let Some(types) = types
            && types.split(',').any(|t| !known.contains(&t))
        {
            return Err(ApiError::invalid(
                "registry_type",
                format!("must be among {}", known.join(", ")),
            ));
        }
        let matching: Vec<&Registry> = self
            .items
            .iter()
            .filter(|r| name.is_none_or(|n| r.registry_name.contains(n)))
            .filter(|r| id.is_none_or(|id| r.id == id))
            .filter(|r| addr.is_none_or(|a| r.registry_addr == a))
            .filter(|r| types.is_none_or(|t| t.split(',').any(|t| t == r.registry_type)))
            .collect();
        let page: Vec<Registry> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|r| {
                let (images_num, latest_sync_time) = counts(&r.id);
                Registry {
                    images_num,
                    latest_sync_time: latest_sync_time.max(r.latest_sync_time),
                    ..(*r).clone()
                }
            })
            .collect();
        Ok(json!({ "data_list": page, "total_num": matching.len() }))
    }
}

/// `registry_addr` is `host[:port]`: no scheme, no path, no spaces.
fn check_host_port(addr: &str) -> Result<(), ApiError> {
    let bad = || {
        ApiError::invalid(
            "registry_addr",
            "must be host[:port], e.g. myharbor.com:8080",
        )
    };
    if addr.contains("://") || addr.contains('/') || addr.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    // A single colon separates a port; more than one is an IPv6 literal, left alone.
    let bad_port = addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.contains(':') && (host.is_empty() || port.parse::<u16>().is_err())
    });
    if bad_port { Err(bad()) } else { Ok(()) }
}

/// `show_image_upload_command`: the password is checked and never echoed.
pub fn upload_command(query: &Query) -> Result<Value, ApiError> {
    let addr = query.required("registry_addr", 1..=256)?;
    let namespace = query.required("namespace", 1..=128)?;
    let username = query.required("username", 1..=128)?;
    query.required("password", 1..=128)?;
    let image = format!("{addr}/{namespace}/hss-scanner:latest");
    Ok(json!({
        "image_command": format!(
            "docker load -i hss-scanner.tar && docker tag hss-scanner:latest {image} && \
             docker login -u {username} {addr} && docker push {image}"
        ),
        "images_download_url": "https://hss-sim.invalid/download/hss-scanner.tar",
        "swr_image_pull_command": "docker pull swr.sim.invalid/hss/hss-scanner:latest",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(overrides: &[(&str, Value)]) -> Vec<u8> {
        let mut v = json!({
            "registry_name": "harbor-1", "registry_type": "Harbor", "api_version": "V2",
            "protocol": "https", "registry_addr": "harbor.example.com:8443",
            "registry_username": "admin", "registry_password": "s3cret-pass",
            "connect_cluster_id": "cluster-1", "get_scan_image_channel": "Swr"
        });
        for (k, val) in overrides {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(*k);
            } else {
                v[*k] = val.clone();
            }
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn every_rule_names_its_field() {
        let cases: &[(&str, Value)] = &[
            ("registry_name", Value::Null),
            ("registry_name", json!("x".repeat(129))),
            ("registry_type", json!("Quay")),
            ("api_version", json!("V3")),
            ("protocol", json!("ftp")),
            ("registry_addr", json!("https://harbor")),
            ("registry_addr", json!("harbor:99999")),
            ("registry_username", json!("")),
            ("registry_password", Value::Null),
            ("connect_cluster_id", json!("c".repeat(65))),
            ("get_scan_image_channel", json!("Ftp")),
            ("namespace", json!(5)),
        ];
        for (field, value) in cases {
            let mut registries = Registries::new(1);
            let err = registries
                .add(&body(&[(field, value.clone())]), 0)
                .unwrap_err();
            assert!(err.message.contains(field), "{field}: {}", err.message);
            assert_eq!(err.status.as_u16(), 400);
        }
        let mut registries = Registries::new(1);
        let other = body(&[("get_scan_image_channel", json!("Other"))]);
        assert!(
            registries
                .add(&other, 0)
                .unwrap_err()
                .message
                .contains("namespace")
        );
    }

    #[test]
    fn stored_registries_list_without_the_password() {
        let mut registries = Registries::new(1);
        registries.add(&body(&[]), 5).unwrap();
        let dup = registries.add(&body(&[]), 5).unwrap_err();
        assert!(dup.message.contains("registry_name"));
        let listed = registries
            .list(&Query::parse(None), &|_: &str| (7, 9))
            .unwrap();
        assert_eq!(listed["total_num"], 1);
        assert_eq!(
            listed["data_list"][0]["registry_addr"],
            "harbor.example.com:8443"
        );
        assert_eq!(listed["data_list"][0]["images_num"], 7);
        assert!(!listed.to_string().contains("s3cret-pass"));
        assert!(
            registries
                .list(&Query::parse(Some("limit=9")), &|_: &str| (0, 0))
                .is_err()
        );
        let pre = registries.preconnect(1);
        assert_eq!(
            (pre.registry_name.as_str(), pre.registry_type.as_str()),
            ("jfrog-02", "Jfrog")
        );
    }

    #[test]
    fn upload_command_never_contains_the_password() {
        let q = Query::parse(Some(
            "registry_addr=h.example.com&namespace=ns&username=u&password=pw-secret",
        ));
        let out = upload_command(&q).unwrap().to_string();
        assert!(out.contains("h.example.com/ns/hss-scanner") && !out.contains("pw-secret"));
        let missing = Query::parse(Some("registry_addr=h&namespace=ns&username=u"));
        assert!(
            upload_command(&missing)
                .unwrap_err()
                .message
                .contains("password")
        );
    }
}
