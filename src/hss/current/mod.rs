//! The adapter on HSS's current image APIs, which replace the deprecated SWR endpoints and
//! also cover the Harbor and JFrog registries connected to HSS:
//! `GET /image/registries/images` lists, `POST /image/image-scan/tasks` submits (creating a
//! scan task, found afterwards in `GET /image/tasks`), `POST /image/image-sync/tasks` asks
//! HSS to re-read registries; `GET /image/scanner-policies`,
//! `GET /image/pay-per-scan/statistics` and `GET /setting/switches/image_pay_per_scan` say
//! what the project does on its own and what it bills.
//!
//! What only a live account could settle (spec section 3.7) is designed around rather than
//! guessed: no cap on images per call is documented, so a too-large or invalid-parameter
//! answer halves the batch (after checking that no task was made of it); the POST returns no
//! task id, so the task is found by the server's time of the answer and the image count,
//! one unidentified submission at a time; and every `image_info` field is copied verbatim
//! from the listing record.

pub mod model;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;

use self::model::{
    CreateScanTaskRequest, CreateSyncTaskRequest, ListRegistryImagesResponse, ListTasksResponse,
    PayPerScanStatistics, ScanPolicyResponse, ScanTaskImage, SwitchStatus, SyncRegistry,
};
use super::transport::client::{ApiRequest, HssClient, to_body};
use super::transport::error::{HssError, INVALID_PARAMETER};
use super::{
    AccountFacts, ApiInUse, ChangeTime, ChangeWindow, ImagePage, ImageSource, PageRequest, Receipt,
    ScanSubmitter, SendGate, SourceError, SubmitError, Ungated, classify,
};
use crate::domain::{ImageIdentity, ImageType, NativeScanPolicy, PayPerScan, ScanTask};

/// The calls of this adapter, as metrics name them.
pub const CALLS: [&str; 7] = [
    "list_registry_images",
    "create_scan_task",
    "list_tasks",
    "create_sync_task",
    "list_scan_policy",
    "pay_per_scan_statistics",
    "show_switch",
];

/// The limits of the current list call.
pub mod limits {
    /// `limit` of `GET /image/registries/images`, 1..=200.
    pub const PAGE_SIZE: u32 = 200;
    /// `offset`, 0..=2,000,000.
    pub const MAX_OFFSET: u32 = 2_000_000;
    /// `limit` of `GET /image/tasks` is 10..=200.
    pub const TASK_PAGE: u32 = 200;
    /// The task list holds at most 1000 tasks.
    pub const MAX_TASKS: u32 = 1000;
    /// `rate_limit`, images per hour.
    pub const MAX_RATE_LIMIT: u32 = 1000;
}

/// How submitted images are scanned (`[policy] scan_scope`, `third_party_rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// The risk types, as the API's bitmask (`0x7fffffff`: all).
    pub scan_scope: i64,
    /// Images per hour for Harbor and JFrog images; 0: unlimited.
    pub third_party_rate_limit: u32,
}

/// How far apart HSS's clock stamping a new task and its clock answering the POST may be.
const TASK_TIME_SLACK_MS: i64 = 120_000;
/// Looks at the task list for a new task this often, at most this many times, before
/// recording the batch without its task.
const TASK_LOOKUPS: u32 = 4;
const TASK_LOOKUP_PAUSE: Duration = Duration::from_millis(500);

/// One target's HSS project, through the current endpoints.
#[derive(Debug)]
pub struct CurrentApi {
    client: HssClient,
    options: ScanOptions,
    /// The registries each type's last listing showed, for a refresh that names them.
    registries: Mutex<HashMap<ImageType, BTreeSet<SyncRegistry>>>,
    /// Task ids already matched to a batch of this process, never matched twice.
    claimed: Mutex<HashSet<String>>,
}

impl CurrentApi {
    pub fn new(client: HssClient, options: ScanOptions) -> Self {
        CurrentApi {
            client,
            options,
            registries: Mutex::new(HashMap::new()),
            claimed: Mutex::new(HashSet::new()),
        }
    }

    /// `GET /image/registries/images`: one page of the images of one type.
    pub async fn list_registry_images(
        &self,
        image_type: &ImageType,
        offset: u32,
        limit: u32,
    ) -> Result<ImagePage, HssError> {
        self.list_registry_images_in(image_type, offset, limit, None)
            .await
    }

    /// [`CurrentApi::list_registry_images`], only the images whose time lies in `window`
    /// when one is given: `start_<time>` and `end_<time>` in ms (spec section 3.2). The scan
    /// window is also sorted by `latest_scan_time`, ascending, as the spec suggests for
    /// following scans: a scan that completes while the window is paged moves past its
    /// fixed end, out of the set, instead of into a page already read.
    pub async fn list_registry_images_in(
        &self,
        image_type: &ImageType,
        offset: u32,
        limit: u32,
        window: Option<&ChangeWindow>,
    ) -> Result<ImagePage, HssError> {
        let mut query = vec![
            ("image_type".to_owned(), image_type.as_str().to_owned()),
            ("offset".to_owned(), offset.to_string()),
            ("limit".to_owned(), limit.to_string()),
        ];
        query.extend(window.map(window_query).into_iter().flatten());
        let req = ApiRequest {
            call: "list_registry_images",
            method: Method::GET,
            path: "image/registries/images".to_owned(),
            query: self.client.with_project_scope(query),
            body: None,
            region: None,
            secrets: Vec::new(),
        };
        let wire: ListRegistryImagesResponse = self.client.call_json(&req).await?;
        let page = wire.into_page(image_type);
        self.remember_registries(image_type, &page);
        Ok(page)
    }

    fn remember_registries(&self, image_type: &ImageType, page: &ImagePage) {
        let mut known = self
            .registries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let of_type = known.entry(image_type.clone()).or_default();
        for image in &page.images {
            if !image.registry_id.is_empty() {
                of_type.insert(SyncRegistry {
                    registry_id: image.registry_id.clone(),
                    registry_type: image.registry_type.clone(),
                });
            }
        }
    }

    /// `POST /image/image-sync/tasks`: ask HSS to re-read `registries`, or all of them.
    pub async fn create_sync_task(&self, registries: Vec<SyncRegistry>) -> Result<(), HssError> {
        let body = CreateSyncTaskRequest {
            sync_all_registries: registries.is_empty(),
            registry_info: registries,
        };
        let req = ApiRequest {
            call: "create_sync_task",
            method: Method::POST,
            path: "image/image-sync/tasks".to_owned(),
            query: self.client.with_project_scope(Vec::new()),
            body: Some(to_body("create_sync_task", &body)?),
            region: self.client.region(),
            secrets: Vec::new(),
        };
        self.client.call(&req).await.map(drop)
    }

    /// `POST /image/image-scan/tasks` with `is_all = false`: scan exactly `body.image_info`.
    /// Returns the server's clock at the answer, by which the task is found.
    pub async fn create_scan_task(
        &self,
        body: &CreateScanTaskRequest<'_>,
    ) -> Result<Option<i64>, HssError> {
        self.create_scan_task_gated(body, &Ungated).await
    }

    /// [`CurrentApi::create_scan_task`], sent only while `gate` allows.
    pub async fn create_scan_task_gated(
        &self,
        body: &CreateScanTaskRequest<'_>,
        gate: &dyn SendGate,
    ) -> Result<Option<i64>, HssError> {
        let query = vec![("global_image_type".to_owned(), "registry".to_owned())];
        let req = ApiRequest {
            call: "create_scan_task",
            method: Method::POST,
            path: "image/image-scan/tasks".to_owned(),
            query: self.client.with_project_scope(query),
            body: Some(to_body("create_scan_task", body)?),
            region: self.client.region(),
            secrets: Vec::new(),
        };
        Ok(self.client.call_gated(&req, gate).await?.server_time_ms())
    }

    /// `GET /image/tasks?type=image_scan`: a page of manual scan tasks, or one task by id.
    pub async fn list_tasks(
        &self,
        task_id: Option<&str>,
        offset: u32,
    ) -> Result<Vec<ScanTaskRow>, HssError> {
        let mut query = vec![
            ("type".to_owned(), "image_scan".to_owned()),
            ("global_image_type".to_owned(), "registry".to_owned()),
        ];
        match task_id {
            Some(id) => query.push(("task_id".to_owned(), id.to_owned())),
            None => {
                query.push(("task_type".to_owned(), "manual".to_owned()));
                query.push(("offset".to_owned(), offset.to_string()));
                query.push(("limit".to_owned(), limits::TASK_PAGE.to_string()));
            }
        }
        let req = ApiRequest {
            call: "list_tasks",
            method: Method::GET,
            path: "image/tasks".to_owned(),
            query: self.client.with_project_scope(query),
            body: None,
            region: None,
            secrets: Vec::new(),
        };
        let wire: ListTasksResponse = self.client.call_json(&req).await?;
        Ok(wire
            .data_list
            .into_iter()
            .filter_map(|info| {
                let begin_time = info.begin_time.value();
                let is_all = info.is_all.value();
                info.into_task().map(|task| ScanTaskRow {
                    task,
                    begin_time,
                    is_all,
                })
            })
            .collect())
    }

    /// Finds the task HSS made of a call of `images` images that HSS answered at
    /// `server_time` (or, without a `Date`, `now` by our clock): an image-naming task of
    /// that size, begun about then, not matched to another batch; the newest if several.
    async fn find_task(&self, images: usize, server_time: Option<i64>) -> Option<String> {
        let around = server_time.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        for attempt in 0..TASK_LOOKUPS {
            if attempt > 0 {
                tokio::time::sleep(TASK_LOOKUP_PAUSE * attempt).await;
            }
            let mut offset = 0;
            while offset < limits::MAX_TASKS {
                let page = match self.list_tasks(None, offset).await {
                    Ok(page) => page,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot read HSS's task list to find the task of a submission");
                        return None;
                    }
                };
                let found = {
                    let claimed = self
                        .claimed
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    page.iter()
                        .filter(|row| {
                            row.is_all != Some(true)
                                && row.task.total == Some(images as i64)
                                && row.begin_time.is_some_and(|begin| {
                                    (begin - around).abs() <= TASK_TIME_SLACK_MS
                                })
                                && !claimed.contains(&row.task.task_id)
                        })
                        .max_by_key(|row| row.begin_time)
                        .map(|row| row.task.task_id.clone())
                };
                if let Some(id) = found {
                    self.claimed
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .insert(id.clone());
                    return Some(id);
                }
                if page.len() < limits::TASK_PAGE as usize {
                    break;
                }
                offset += limits::TASK_PAGE;
            }
        }
        None
    }

    /// `GET /setting/switches/image_pay_per_scan`: whether pay-per-use image scanning is on.
    pub async fn pay_per_scan_switch(&self) -> Result<Option<bool>, HssError> {
        let req = ApiRequest {
            call: "show_switch",
            method: Method::GET,
            path: "setting/switches/image_pay_per_scan".to_owned(),
            query: self.client.with_project_scope(Vec::new()),
            body: None,
            region: None,
            secrets: Vec::new(),
        };
        let answer: SwitchStatus = self.client.call_json(&req).await?;
        Ok(answer.enabled.value())
    }
}

/// The query parameters of a change window.
fn window_query(window: &ChangeWindow) -> Vec<(String, String)> {
    let field = window.time.field();
    let mut query = vec![
        (format!("start_{field}"), window.start.max(0).to_string()),
        (format!("end_{field}"), window.end.max(0).to_string()),
    ];
    if window.time == ChangeTime::Scan {
        query.push(("sort_key".to_owned(), "latest_scan_time".to_owned()));
        query.push(("sort_dir".to_owned(), "asc".to_owned()));
    }
    query
}

/// A task with what matching it to a submission needs.
#[derive(Debug, Clone)]
pub struct ScanTaskRow {
    pub task: ScanTask,
    /// HSS's clock when it began, ms.
    pub begin_time: Option<i64>,
    pub is_all: Option<bool>,
}

#[async_trait]
impl ImageSource for CurrentApi {
    fn max_offset(&self) -> u32 {
        limits::MAX_OFFSET
    }

    async fn refresh(&self, image_type: &ImageType) -> Result<(), SourceError> {
        // The registries the last listing of this type showed; before any listing, all.
        let registries: Vec<SyncRegistry> = self
            .registries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(image_type)
            .map(|known| known.iter().cloned().collect())
            .unwrap_or_default();
        Ok(self.create_sync_task(registries).await?)
    }

    async fn page(&self, request: &PageRequest) -> Result<ImagePage, SourceError> {
        if request.offset > limits::MAX_OFFSET {
            return Err(SourceError::Unsupported(format!(
                "HSS lists no further than offset {}; the listing stopped at {}",
                limits::MAX_OFFSET,
                request.offset
            )));
        }
        let limit = request.limit.clamp(1, limits::PAGE_SIZE);
        Ok(self
            .list_registry_images_in(
                &request.image_type,
                request.offset,
                limit,
                request.window.as_ref(),
            )
            .await?)
    }

    fn lists_changes(&self) -> bool {
        true
    }
}

#[async_trait]
impl ScanSubmitter for CurrentApi {
    fn max_batch(&self) -> usize {
        // No cap is documented; `policy.batch_size` decides, and a too-large answer halves.
        usize::MAX
    }

    fn api_in_use(&self) -> ApiInUse {
        ApiInUse::Current
    }

    async fn preflight(&self) -> Result<(), SubmitError> {
        match self.pay_per_scan_switch().await {
            Ok(Some(false)) => Err(SubmitError::StopRun(crate::domain::BatchFailure {
                message: "pay-per-use image scanning is switched off in this HSS project \
                          (the image_pay_per_scan switch): HSS scans no registry image until \
                          it is switched on in the HSS console"
                    .to_owned(),
                ..crate::domain::BatchFailure::default()
            })),
            Ok(_) => Ok(()),
            Err(err) => {
                // The switch cannot be read: submit anyway, and let HSS's answer say more.
                tracing::warn!(error = %err, "cannot read the pay-per-scan switch");
                Ok(())
            }
        }
    }

    async fn submit(
        &self,
        image_type: &ImageType,
        images: &[&ImageIdentity],
        gate: &dyn SendGate,
    ) -> Result<Receipt, SubmitError> {
        let rate_limit = if image_type.is_third_party() {
            self.options.third_party_rate_limit
        } else {
            0
        };
        let body = CreateScanTaskRequest {
            scan_scope: self.options.scan_scope,
            rate_limit,
            is_all: false,
            image_info: images.iter().map(|i| ScanTaskImage::for_image(i)).collect(),
        };
        match self.create_scan_task_gated(&body, gate).await {
            Ok(server_time) => Ok(Receipt {
                task_id: self.find_task(images.len(), server_time).await,
            }),
            Err(err) => {
                let too_large =
                    err.is_request_too_large() || err.api().is_some_and(|api| api.status == 413);
                if err.error_code() == Some(INVALID_PARAMETER) {
                    // The spec's advice: look for a task before assuming nothing was made;
                    // if none, halve the batch (an image HSS refuses ends up alone).
                    if let Some(task_id) = self.find_task(images.len(), None).await {
                        return Ok(Receipt {
                            task_id: Some(task_id),
                        });
                    }
                    return Err(classify(&err, true));
                }
                Err(classify(&err, too_large))
            }
        }
    }

    async fn task(&self, task_id: &str) -> Result<Option<ScanTask>, SourceError> {
        Ok(self
            .list_tasks(Some(task_id), 0)
            .await?
            .into_iter()
            .map(|row| row.task)
            .find(|task| task.task_id == task_id))
    }
}

#[async_trait]
impl AccountFacts for CurrentApi {
    async fn native_policy(&self) -> Result<Option<NativeScanPolicy>, SourceError> {
        let req = ApiRequest {
            call: "list_scan_policy",
            method: Method::GET,
            path: "image/scanner-policies".to_owned(),
            query: self.client.with_project_scope(vec![
                ("type".to_owned(), "cycle".to_owned()),
                ("global_image_type".to_owned(), "registry".to_owned()),
            ]),
            body: None,
            region: None,
            secrets: Vec::new(),
        };
        let wire: ScanPolicyResponse = self.client.call_json(&req).await?;
        Ok(Some(wire.into_policy()))
    }

    async fn pay_per_scan(&self) -> Result<Option<PayPerScan>, SourceError> {
        let enabled = self.pay_per_scan_switch().await?;
        let req = ApiRequest {
            call: "pay_per_scan_statistics",
            method: Method::GET,
            path: "image/pay-per-scan/statistics".to_owned(),
            query: self.client.with_project_scope(Vec::new()),
            body: None,
            region: None,
            secrets: Vec::new(),
        };
        let wire: PayPerScanStatistics = self.client.call_json(&req).await?;
        Ok(Some(wire.into_pay_per_scan(enabled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_window_is_sent_as_its_two_bounds_and_scans_sorted_by_time() {
        let window = |time| ChangeWindow {
            time,
            start: 1_000,
            end: 2_000,
        };
        assert_eq!(
            window_query(&window(ChangeTime::Update)),
            vec![
                ("start_latest_update_time".to_owned(), "1000".to_owned()),
                ("end_latest_update_time".to_owned(), "2000".to_owned()),
            ]
        );
        assert_eq!(
            window_query(&window(ChangeTime::Sync))[0].0,
            "start_latest_sync_time"
        );
        let scan = window_query(&window(ChangeTime::Scan));
        assert_eq!(scan.len(), 4);
        assert!(scan.contains(&("sort_key".to_owned(), "latest_scan_time".to_owned())));
        assert!(scan.contains(&("sort_dir".to_owned(), "asc".to_owned())));
        // The API takes no negative time; an absurd start is sent as 0, not refused.
        let early = ChangeWindow {
            time: ChangeTime::Update,
            start: -5,
            end: 2_000,
        };
        assert_eq!(window_query(&early)[0].1, "0");
    }
}
