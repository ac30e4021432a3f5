//! The third-party registry calls behind `hss-scand registry`: connect a Harbor or JFrog
//! registry to HSS (`POST /image/registries`), list the connected ones
//! (`GET /image/registries`), and get the command that uploads HSS's scanner image into a
//! registry (`GET /image/registries/image-upload-command`, whose query carries a password and
//! is therefore never logged).

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use super::transport::client::{ApiRequest, HssClient, to_body};
use super::transport::error::HssError;
use super::transport::lenient::{self, Lenient};

/// The calls of this module, as metrics name them.
pub const CALLS: [&str; 3] = ["add_registry", "list_registries", "image_upload_command"];

/// `AddRegistryRequestBody`. The password is a secret until the moment it is serialised.
#[derive(Debug, Clone, Serialize)]
pub struct AddRegistryRequest {
    pub registry_name: String,
    pub registry_type: String,
    pub api_version: String,
    pub protocol: String,
    pub registry_addr: String,
    pub registry_username: String,
    #[serde(serialize_with = "expose")]
    pub registry_password: SecretString,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub connect_cluster_id: String,
    pub get_scan_image_channel: String,
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// Query of `GET /image/registries/image-upload-command`: the password travels in the URL,
/// so the client never logs that URL.
#[derive(Debug, Clone)]
pub struct UploadCommandRequest {
    pub registry_addr: String,
    pub namespace: String,
    pub username: String,
    pub password: SecretString,
}

impl UploadCommandRequest {
    pub fn query(&self) -> Vec<(String, String)> {
        vec![
            ("registry_addr".into(), self.registry_addr.clone()),
            ("namespace".into(), self.namespace.clone()),
            ("username".into(), self.username.clone()),
            ("password".into(), self.password.expose_secret().to_owned()),
        ]
    }
}

/// `GET /image/registries/image-upload-command` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UploadCommand {
    pub image_command: String,
    pub images_download_url: String,
    pub swr_image_pull_command: String,
}

/// `GET /image/registries` answer: one page of the third-party registries.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListRegistriesResponse {
    #[serde(default)]
    pub total_num: Lenient<i64>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub data_list: Vec<RegistryInfo>,
}

/// `RegistryInfo`: one registry connected to HSS, read leniently (a field that is absent,
/// `null` or of another type is empty). The id is a string here, unlike image ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryInfo {
    #[serde(deserialize_with = "lenient::text")]
    pub id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub registry_name: String,
    /// `Harbor`, `Jfrog`, `SwrPrivate`, `SwrShared`, `SwrEnterprise` or `Other`.
    #[serde(deserialize_with = "lenient::text")]
    pub registry_type: String,
    /// `V1` or `V2`.
    #[serde(deserialize_with = "lenient::text")]
    pub api_version: String,
    #[serde(deserialize_with = "lenient::text")]
    pub protocol: String,
    #[serde(deserialize_with = "lenient::text")]
    pub registry_addr: String,
    #[serde(deserialize_with = "lenient::text")]
    pub registry_username: String,
    #[serde(deserialize_with = "lenient::text")]
    pub namespace: String,
    #[serde(deserialize_with = "lenient::text")]
    pub connect_cluster_id: String,
    /// `Swr` or `Other`.
    #[serde(deserialize_with = "lenient::text")]
    pub get_scan_image_channel: String,
    /// `success`, `fail` or `accessing`.
    #[serde(deserialize_with = "lenient::text")]
    pub status: String,
    /// `CREATE_JOB_FAILED`, `REQUEST_API_ERROR` or `SERVER_ERROR`.
    #[serde(deserialize_with = "lenient::text")]
    pub fail_reason: String,
    #[serde(deserialize_with = "lenient::number")]
    pub images_num: Option<i64>,
    /// Epoch milliseconds.
    #[serde(deserialize_with = "lenient::number")]
    pub latest_sync_time: Option<i64>,
}

/// `POST /image/registries`: connect a Harbor or JFrog registry.
pub async fn add(client: &HssClient, body: &AddRegistryRequest) -> Result<(), HssError> {
    let req = ApiRequest {
        call: "add_registry",
        method: Method::POST,
        path: "image/registries".to_owned(),
        query: client.with_project_scope(Vec::new()),
        body: Some(to_body("add_registry", body)?),
        region: None,
        secrets: vec![body.registry_password.expose_secret().to_owned()],
    };
    client.call(&req).await.map(drop)
}

/// `GET /image/registries`: every third-party registry of the project, read page by page
/// (`limit` 200, the most the call allows; `offset += limit` until `total_num`). HSS
/// documents at most 100 registries, so this is one call in practice.
pub async fn list(client: &HssClient) -> Result<Vec<RegistryInfo>, HssError> {
    const LIMIT: u32 = 200;
    // HSS documents at most 100 registries a project. A server that claims far more (or
    // repeats itself) is not listed to the end: memory and time stay bounded.
    const MAX_REGISTRIES: usize = 1000;
    let refuse = |detail: String| HssError::Malformed {
        call: "list_registries",
        status: 200,
        request_id: None,
        detail,
        retryable: false,
    };
    let mut registries: Vec<RegistryInfo> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let mut offset = 0;
    loop {
        let query = vec![
            ("offset".to_owned(), offset.to_string()),
            ("limit".to_owned(), LIMIT.to_string()),
        ];
        let req = ApiRequest {
            call: "list_registries",
            method: Method::GET,
            path: "image/registries".to_owned(),
            query: client.with_project_scope(query),
            body: None,
            region: None,
            secrets: Vec::new(),
        };
        let page: ListRegistriesResponse = client.call_json(&req).await?;
        let received = page.data_list.len();
        let before = registries.len();
        for registry in page.data_list {
            if ids.insert(registry.id.clone()) {
                registries.push(registry);
            }
        }
        if registries.len() > MAX_REGISTRIES {
            return Err(refuse(format!(
                "HSS listed more than {MAX_REGISTRIES} registries (it documents at most 100); \
                 the listing was stopped"
            )));
        }
        offset += LIMIT;
        // A short page is the last, whatever `total_num` says.
        let more = received == LIMIT as usize
            && page
                .total_num
                .value()
                .is_none_or(|total| i64::from(offset) < total);
        if !more {
            return Ok(registries);
        }
        if registries.len() == before {
            return Err(refuse(
                "HSS answered a full page of registries it had already listed (it seems to \
                 ignore offset); the listing was stopped"
                    .to_owned(),
            ));
        }
    }
}

/// `GET /image/registries/image-upload-command`. The password is in the query.
pub async fn upload_command(
    client: &HssClient,
    request: &UploadCommandRequest,
) -> Result<UploadCommand, HssError> {
    let req = ApiRequest {
        call: "image_upload_command",
        method: Method::GET,
        path: "image/registries/image-upload-command".to_owned(),
        query: request.query(),
        body: None,
        region: None,
        secrets: vec![request.password.expose_secret().to_owned()],
    };
    client.call_json(&req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_read_leniently_with_string_ids() {
        let page: ListRegistriesResponse = serde_json::from_str(
            r#"{"total_num": "2", "data_list": [
                {"id": "4f0c-1", "registry_name": "harbor-1", "registry_type": "Harbor",
                 "images_num": "12", "latest_sync_time": 1700000000000, "namespace": null,
                 "status": ["?"], "unknown": {"x": 1}},
                {"id": 7, "registry_name": "jfrog-1", "images_num": "many"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(page.total_num, Lenient::Value(2));
        let [harbor, jfrog] = &page.data_list[..] else {
            panic!("two registries")
        };
        assert_eq!(
            (harbor.id.as_str(), harbor.registry_name.as_str()),
            ("4f0c-1", "harbor-1")
        );
        assert_eq!(harbor.images_num, Some(12));
        assert_eq!(harbor.latest_sync_time, Some(1_700_000_000_000));
        assert_eq!(
            (harbor.namespace.as_str(), harbor.status.as_str()),
            ("", "")
        );
        assert_eq!(jfrog.id, "7", "a numeric id is kept as text");
        assert_eq!(jfrog.images_num, None);
        let empty: ListRegistriesResponse = serde_json::from_str(r#"{"data_list": null}"#).unwrap();
        assert!(empty.data_list.is_empty() && empty.total_num == Lenient::Missing);
    }
}
