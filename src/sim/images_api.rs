//! The image endpoints: list (`list_swr_image_repository`), synchronize
//! (`run_image_synchronize`) and batch scan (`batch_scan_swr_image`), after authentication
//! and fault injection have let the request through.

use axum::Json;
use serde::Serialize;
use serde_json::{Value, json};

use crate::domain::ImageType;
use crate::hss::legacy::limits;

use super::Sim;
use super::dataset::{Filter, FilterSpec, Status, Submitted, kind_of};
use super::error::ApiError;
use super::image_view::ImageView;
use super::params::{Fields, Query, json_object};
use super::{read, write};

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
pub fn list(sim: &Sim, query: &Query, now_ms: i64) -> Result<Json<ImagePage>, ApiError> {
    let image_type = query.required("image_type", 1..=64)?;
    if !LIST_TYPES.contains(&image_type) {
        return Err(ApiError::invalid(
            "image_type",
            format!("must be one of {}", LIST_TYPES.join(", ")),
        ));
    }
    let limit = query.int("limit", 1..=i64::from(limits::PAGE_SIZE), 10)? as usize;
    let offset = query.int("offset", 0..=2_000_000, 0)? as usize;
    let scan_status = query
        .get("scan_status")
        .map(|s| {
            Status::parse(s)
                .ok_or_else(|| ApiError::invalid("scan_status", "is not a known scan status"))
        })
        .transpose()?;
    let spec = FilterSpec {
        namespace: query.get("namespace"),
        image_name: query.get("image_name"),
        image_version: query.get("image_version"),
        scan_status,
        latest_version: query.bool("latest_version")?,
        instance_id: query.get("instance_id"),
    };

    // local_image is a valid type, but this account has no hosts with images.
    let Some(kind) = kind_of(&ImageType::from(image_type)) else {
        sim.stats.update(|s| s.list_pages += 1);
        return Ok(Json(ImagePage {
            total_num: 0,
            data_list: Vec::new(),
        }));
    };
    if offset > 0 && sim.faults.faults().total_drift {
        write(&sim.dataset).add(kind, 1, now_ms);
    }
    let page = {
        let dataset = read(&sim.dataset);
        let filter = Filter::new(&spec, &dataset.naming);
        let (total_num, window) = dataset.list(kind, &filter, offset, limit, now_ms);
        ImagePage {
            total_num,
            data_list: window
                .into_iter()
                .map(|i| dataset.view(i, now_ms))
                .collect(),
        }
    };
    sim.stats.update(|s| s.list_pages += 1);
    Ok(Json(page))
}

/// `POST image/synchronize`: nothing to fetch from a simulated SWR, so only the contract.
pub fn synchronize(sim: &Sim, body: &[u8]) -> Result<Json<Value>, ApiError> {
    let map = json_object(body)?;
    Fields::new(&map, "").one_of("image_type", &SCAN_TYPES)?;
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
    let spec = FilterSpec {
        namespace: f.string("namespace", 1..=limits::NAMESPACE)?,
        image_name: f.string("image_name", 1..=limits::IMAGE_NAME)?,
        image_version: f.string("image_version", 1..=limits::IMAGE_VERSION)?,
        scan_status,
        latest_version: f.bool("latest_version")?,
        instance_id: None,
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

    let kind = kind_of(&ImageType::from(image_type))
        .ok_or_else(|| ApiError::invalid("image_type", "unknown"))?;
    let mut tally = Tally::default();
    {
        let mut dataset = write(&sim.dataset);
        if operate_all {
            let filter = Filter::new(&spec, &dataset.naming);
            for index in dataset.matching(kind, &filter, now_ms) {
                tally.count(dataset.submit(index, now_ms));
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
                    Some(index) => tally.count(dataset.submit(index, now_ms)),
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
