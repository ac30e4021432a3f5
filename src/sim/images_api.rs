//! The deprecated image endpoints: list (`list_swr_image_repository`), synchronize
//! (`run_image_synchronize`) and batch scan (`batch_scan_swr_image`), after authentication
//! and fault injection have let the request through. They see only the SWR images, as they
//! always did; the current calls are in [`registry_images_api`](super::registry_images_api)
//! and [`tasks_api`](super::tasks_api).

use axum::Json;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};

use super::dataset::{Status, Submitted};
use super::error::ApiError;
use super::filter::{Filter, FilterSpec};
use super::image_view::ImageView;
use super::kind::Kind;
use super::limits;
use super::listing::Order;
use super::page_faults::{self, PageFault};
use super::params::{Fields, Query, json_object};
use super::{Sim, lock, read, write};

/// `{ total_num, data_list }`.
#[derive(Debug, Serialize)]
pub struct ImagePage {
    pub total_num: usize,
    pub data_list: Vec<ImageView>,
}

const LIST_TYPES: [&str; 4] = [
    "private_image",
    "shared_image",
    "instance_image",
    "local_image",
];
const SCAN_TYPES: [&str; 3] = ["private_image", "shared_image", "instance_image"];

/// `GET image/swr-repository`.
pub fn list(
    sim: &Sim,
    query: &Query,
    now_ms: i64,
    fault: Option<PageFault>,
) -> Result<Response, ApiError> {
    let image_type = query.required("image_type", 1..=64)?;
    if !LIST_TYPES.contains(&image_type) {
        return Err(ApiError::invalid(
            "image_type",
            format!("must be one of {}", LIST_TYPES.join(", ")),
        ));
    }
    let limit = query.int("limit", 1..=limits::PAGE_SIZE, 10)? as usize;
    let mut offset = query.int("offset", 0..=limits::MAX_OFFSET, 0)? as usize;
    if fault == Some(PageFault::IgnoreOffset) {
        offset = 0;
    }
    let scan_status = query
        .get("scan_status")
        .map(|s| {
            Status::parse(s)
                .ok_or_else(|| ApiError::invalid("scan_status", "is not a known scan status"))
        })
        .transpose()?;
    // local_image is a valid type, but this account has no hosts with images.
    let Some(kind) = Kind::parse(image_type) else {
        sim.stats.update(|s| s.list_pages += 1);
        let empty = ImagePage {
            total_num: 0,
            data_list: Vec::new(),
        };
        return Ok(page_faults::respond(empty, fault));
    };
    let spec = FilterSpec {
        kind: Some(kind),
        namespace: query.get("namespace"),
        image_name: query.get("image_name"),
        image_version: query.get("image_version"),
        scan_status,
        latest_version: query.bool("latest_version")?,
        instance_id: query.get("instance_id"),
        ..FilterSpec::default()
    };
    if offset > 0 && sim.faults.faults().total_drift {
        write(&sim.dataset).add(kind, 1, now_ms);
    }
    let page = {
        let dataset = read(&sim.dataset);
        let filter = Filter::new(&spec, &dataset);
        let (total_num, window) = dataset.list(&filter, Order::Id, offset, limit, now_ms);
        ImagePage {
            total_num,
            data_list: window
                .into_iter()
                .map(|i| dataset.view(i, now_ms))
                .collect(),
        }
    };
    sim.stats.update(|s| s.list_pages += 1);
    Ok(page_faults::respond(page, fault))
}

/// `POST image/synchronize`: nothing to fetch from a simulated SWR, so only the contract.
pub fn synchronize(sim: &Sim, body: &[u8], now_ms: i64) -> Result<Json<Value>, ApiError> {
    let map = json_object(body)?;
    let image_type = Fields::new(&map, "").one_of("image_type", &SCAN_TYPES)?;
    // The type's SWR registry was just synced: the current calls see its sync time move.
    if let Some(kind) = Kind::parse(image_type) {
        let mut dataset = write(&sim.dataset);
        if let Some(slot) = dataset.default_registry(kind) {
            dataset.start_sync(usize::from(slot), now_ms, now_ms);
        }
    }
    sim.stats.update(|s| s.sync_calls += 1);
    Ok(Json(json!({ "error_code": 0, "error_description": "" })))
}

/// One validated `image_info_list` item.
struct Item<'a> {
    namespace: &'a str,
    image_name: &'a str,
    image_version: &'a str,
    instance_id: &'a str,
}

/// `POST image/batch-scan`: validate everything first, so a rejected request changes nothing.
pub fn batch_scan(sim: &Sim, body: &[u8], now_ms: i64) -> Result<Json<Value>, ApiError> {
    let map = json_object(body)?;
    let f = Fields::new(&map, "");
    let image_type = f.one_of("image_type", &SCAN_TYPES)?;
    let list = f.array("image_info_list")?.map_or(&[][..], Vec::as_slice);
    if list.len() > limits::BATCH_ITEMS {
        return Err(ApiError::too_large(format!(
            "request too large: image_info_list has {} items, at most {} are allowed",
            list.len(),
            limits::BATCH_ITEMS
        )));
    }
    let operate_all = f.bool("operate_all")?.unwrap_or(false);
    f.string("repo_type", 0..=usize::MAX)?;
    let scan_status = f
        .string("scan_status", 1..=64)?
        .map(|s| {
            Status::parse(s)
                .ok_or_else(|| ApiError::invalid("scan_status", "is not a known scan status"))
        })
        .transpose()?;
    for field in [
        "image_size",
        "start_latest_update_time",
        "end_latest_update_time",
        "start_latest_scan_time",
        "end_latest_scan_time",
    ] {
        f.int(field)?;
    }
    let kind = Kind::parse(image_type).ok_or_else(|| ApiError::invalid("image_type", "unknown"))?;
    let spec = FilterSpec {
        kind: Some(kind),
        namespace: f.string("namespace", 1..=limits::NAMESPACE)?,
        image_name: f.string("image_name", 1..=limits::IMAGE_NAME)?,
        image_version: f.string("image_version", 1..=limits::IMAGE_VERSION)?,
        scan_status,
        latest_version: f.bool("latest_version")?,
        ..FilterSpec::default()
    };

    let mut items = Vec::with_capacity(list.len());
    for (n, value) in list.iter().enumerate() {
        let path = format!("image_info_list[{n}]");
        let Value::Object(object) = value else {
            return Err(ApiError::invalid(&path, "must be an object"));
        };
        let item = Fields::new(object, &path);
        items.push(Item {
            namespace: item.required("namespace", 1..=limits::NAMESPACE)?,
            image_name: item.required("image_name", 1..=limits::IMAGE_NAME)?,
            image_version: item.required("image_version", 1..=limits::IMAGE_VERSION)?,
            instance_id: item
                .string("instance_id", 0..=limits::INSTANCE_ID)?
                .unwrap_or(""),
        });
        item.string("instance_url", 0..=limits::INSTANCE_URL)?;
    }
    if !operate_all && items.is_empty() {
        return Err(ApiError::invalid(
            "image_info_list",
            "is required when operate_all is false",
        ));
    }

    let mut tally = Tally::default();
    {
        let mut dataset = write(&sim.dataset);
        let mut billing = lock(&sim.billing);
        let mut submit = |dataset: &mut super::dataset::Dataset, index: usize| {
            let outcome = dataset.submit(index, now_ms);
            if outcome == Submitted::Queued {
                let (finish_ms, status) = dataset.pending_outcome(index);
                if status == Status::Success {
                    billing.expect_success(finish_ms);
                }
            }
            outcome
        };
        if operate_all {
            let filter = Filter::new(&spec, &dataset);
            for index in dataset.matching(&filter, now_ms) {
                tally.count(submit(&mut dataset, index));
            }
        } else {
            for item in &items {
                match dataset.find(
                    kind,
                    item.namespace,
                    item.image_name,
                    item.image_version,
                    item.instance_id,
                ) {
                    Some(index) => tally.count(submit(&mut dataset, index)),
                    None => tally.unknown += 1,
                }
            }
        }
    }
    sim.stats.update(|s| {
        s.batch_scan_calls += 1;
        s.images_submitted += tally.found;
        s.duplicate_submissions += tally.duplicates;
        s.unscannable_submissions += tally.unscannable;
        s.unknown_images += tally.unknown;
        *s.images_per_call
            .entry(tally.found + tally.unknown)
            .or_default() += 1;
    });
    tracing::debug!(
        found = tally.found,
        unknown = tally.unknown,
        duplicates = tally.duplicates,
        "batch scan"
    );
    Ok(Json(json!({})))
}

#[derive(Default)]
struct Tally {
    found: u64,
    duplicates: u64,
    unscannable: u64,
    unknown: u64,
}

impl Tally {
    fn count(&mut self, outcome: Submitted) {
        self.found += 1;
        match outcome {
            Submitted::Queued => {}
            Submitted::Duplicate => self.duplicates += 1,
            Submitted::Unscannable => self.unscannable += 1,
        }
    }
}
