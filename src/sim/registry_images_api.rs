//! `GET image/registries/images` (`list_registry_images`), the current list call: every
//! image of the account, SWR and third-party, one record per tag, with every query filter of
//! the documentation. Filtered and sorted listings are computed once per question and then
//! paged from memory ([`listing`](super::listing)).

use axum::response::Response;
use serde::Serialize;

use super::Sim;
use super::dataset::{Severity, Status};
use super::error::ApiError;
use super::filter::{Filter, FilterSpec, Window};
use super::image_view::RegistryImageView;
use super::kind::Kind;
use super::limits;
use super::listing::Order;
use super::page_faults::{self, PageFault};
use super::params::Query;
use super::read;

/// `{ total_num, data_list }`.
#[derive(Debug, Serialize)]
pub struct RegistryImagePage<'a> {
    pub total_num: usize,
    pub data_list: Vec<RegistryImageView<'a>>,
}

/// The `scan_status` values the query side documents (no `download_failed` or
/// `image_oversized` filter, although records carry them).
const QUERY_STATUSES: [&str; 5] = [
    "unscan",
    "success",
    "scanning",
    "failed",
    "waiting_for_scan",
];

pub fn list(
    sim: &Sim,
    query: &Query,
    now_ms: i64,
    fault: Option<PageFault>,
) -> Result<Response, ApiError> {
    query.string("enterprise_project_id", 1..=256)?;
    let limit = query.int("limit", 1..=limits::PAGE_SIZE, 10)? as usize;
    let mut offset = query.int("offset", 0..=limits::MAX_OFFSET, 0)? as usize;
    if fault == Some(PageFault::IgnoreOffset) {
        offset = 0;
    }
    let kind = match query.string("image_type", 1..=64)? {
        None => None,
        Some(text) => Some(Kind::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "image_type",
                "must be one of private_image, shared_image, instance_image, harbor, jfrog",
            )
        })?),
    };
    let order = match query.one_of("sort_key", &["latest_scan_time"])? {
        None => {
            query.one_of("sort_dir", &["asc", "desc"])?;
            Order::Id
        }
        Some(_) => match query.one_of("sort_dir", &["asc", "desc"])? {
            Some("desc") => Order::ScanTimeDesc,
            _ => Order::ScanTimeAsc,
        },
    };
    let scan_status = query
        .one_of("scan_status", &QUERY_STATUSES)?
        .and_then(Status::parse);
    let severity = query
        .one_of("severity_level", &["Security", "Low", "Medium", "High"])?
        .and_then(Severity::parse);
    let spec = FilterSpec {
        kind,
        namespace: query.string("namespace", 1..=128)?,
        image_name: query.string("image_name", 1..=128)?,
        image_version: query.string("image_version", 1..=64)?,
        registry_name: query.string("registry_name", 1..=128)?,
        scan_status,
        latest_version: query.bool("latest_version")?,
        instance_id: query.string("instance_id", 0..=128)?,
        instance_name: query.string("instance_name", 0..=128)?,
        multi_arch: query.bool("is_multarch")?,
        severity,
        has_vul: query.bool("has_vul")?,
        has_unsafe_setting: query.bool("has_unsafe_setting")?,
        has_malicious_file: query.bool("has_malicious_file")?,
        risky: query.bool("risky")?,
        image_size: query.opt_int("image_size", 0..=2_147_483_547)?,
        update: window(query, "latest_update_time")?,
        scan: window(query, "latest_scan_time")?,
        sync: window(query, "latest_sync_time")?,
    };
    // The page borrows from the account, so it is serialised before the read lock goes.
    let response = {
        let dataset = read(&sim.dataset);
        let filter = Filter::new(&spec, &dataset);
        let (total_num, window) = dataset.list(&filter, order, offset, limit, now_ms);
        let page = RegistryImagePage {
            total_num,
            data_list: window
                .into_iter()
                .map(|i| dataset.registry_view(i, now_ms))
                .collect(),
        };
        page_faults::respond(page, fault)
    };
    sim.stats.update(|s| s.list_pages += 1);
    Ok(response)
}

/// `start_{name}` and `end_{name}`: ms, start ≤ end when both are given.
pub fn window(query: &Query, name: &str) -> Result<Option<Window>, ApiError> {
    let start_name = format!("start_{name}");
    let end_name = format!("end_{name}");
    let start = query.opt_int(&start_name, 0..=limits::MAX_TIME_MS)?;
    let end = query.opt_int(&end_name, 0..=limits::MAX_TIME_MS)?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(ApiError::invalid(
            &start_name,
            format!("must not be after {end_name}"),
        ));
    }
    Ok(Window::of(start, end))
}
