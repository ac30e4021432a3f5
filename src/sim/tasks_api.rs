//! The current scan and sync calls: create a scan task (`create_manual_image_scan_task`),
//! list tasks (`list_image_scan_task`), stop a scan task, create a sync task
//! (`create_image_synchronize_task`) and list a sync task's registries.
//!
//! Choices where HSS documents nothing, each the strict one:
//! * an `image_info` element must name a live record by `id` and carry exactly that record's
//!   `image_digest`, names and registry fields (`instance_id` too for SWR enterprise); any
//!   mismatch refuses the whole call with `HSS.0001` and changes nothing;
//! * multi-architecture images, expired shared images and unscannable images are accepted
//!   into the task and failed at once in its `failed_images` (the user guide says HSS cannot
//!   scan them; a task that reports them is the honest answer a client can act on);
//! * with the billing switch off the call is refused with `HSS.1002` (insufficient quota);
//! * a sync task takes the lifecycle's `scan_duration` to finish.

use axum::Json;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::dataset::{Dataset, Status};
use super::error::ApiError;
use super::filter::{Filter, FilterSpec, Window};
use super::kind::Kind;
use super::limits;
use super::names::Naming;
use super::params::{Fields, Query, json_object};
use super::submission::{self, TaskSpec};
use super::tasks::{Ending, Family, SyncedRegistry, Task, TaskQuery};
use super::{Sim, lock, read, write};

/// The `registry_type` values an `image_info` element may carry.
const REGISTRY_TYPES: [&str; 7] = [
    "SwrPrivate",
    "SwrShared",
    "SwrEnterprise",
    "Harbor",
    "Jfrog",
    "Other",
    "Local",
];

/// Generous bound on identifying strings: the documentation gives none for `image_info`.
const MAX_TEXT: usize = 1024;

/// The optional `region` header: 1 to 128 characters when sent.
fn check_region(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get("region") {
        None => Ok(()),
        Some(value) => {
            let len = value.as_bytes().len();
            if (1..=128).contains(&len) && value.to_str().is_ok() {
                Ok(())
            } else {
                Err(ApiError::invalid(
                    "region",
                    "must be 1 to 128 characters long",
                ))
            }
        }
    }
}

/// One validated `image_info` element.
struct Wanted<'a> {
    path: String,
    id: i64,
    fields: [(&'static str, &'a str); 7],
    instance_id: Option<&'a str>,
}

fn wanted<'a>(n: usize, value: &'a Value) -> Result<Wanted<'a>, ApiError> {
    let path = format!("image_info[{n}]");
    let Value::Object(object) = value else {
        return Err(ApiError::invalid(&path, "must be an object"));
    };
    let f = Fields::new(object, &path);
    let id = f
        .int("id")?
        .ok_or_else(|| ApiError::invalid(&format!("{path}.id"), "is required"))?;
    let mut fields = [("", ""); 7];
    for (slot, name) in fields.iter_mut().zip([
        "image_digest",
        "namespace",
        "image_name",
        "image_version",
        "registry_id",
        "registry_name",
        "registry_type",
    ]) {
        *slot = (name, f.required(name, 1..=MAX_TEXT)?);
    }
    let registry_type = fields[6].1;
    if !REGISTRY_TYPES.contains(&registry_type) {
        return Err(ApiError::invalid(
            &format!("{path}.registry_type"),
            format!("must be one of {}", REGISTRY_TYPES.join(", ")),
        ));
    }
    let instance_id = f.string("instance_id", 0..=MAX_TEXT)?;
    if registry_type == "SwrEnterprise" && instance_id.is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            &format!("{path}.instance_id"),
            "is required for SWR enterprise images",
        ));
    }
    f.string("instance_url", 0..=MAX_TEXT)?;
    f.string("image_id", 0..=MAX_TEXT)?;
    Ok(Wanted {
        path,
        id,
        fields,
        instance_id,
    })
}

/// The live record an element names, if every field agrees with it.
fn locate(dataset: &Dataset, w: &Wanted<'_>) -> Result<usize, ApiError> {
    let index = dataset.by_id(w.id).ok_or_else(|| {
        ApiError::invalid(
            &format!("{}.id", w.path),
            format!("no image record {} (deleted, or never listed)", w.id),
        )
    })?;
    let kind = dataset.kind(index);
    let registry = dataset.registry_of(index);
    for (name, sent) in w.fields {
        let actual = match name {
            "image_digest" => dataset.digest(index),
            "namespace" => dataset.naming.namespace(index),
            "image_name" => dataset.naming.image_name(index),
            "image_version" => Naming::image_version(index),
            "registry_id" => registry.id.clone(),
            "registry_name" => registry.name.clone(),
            _ => kind.registry_type().to_owned(),
        };
        if actual != sent {
            return Err(ApiError::invalid(
                &format!("{}.{name}", w.path),
                format!("does not match image record {} (list it again)", w.id),
            ));
        }
    }
    if kind == Kind::Instance {
        let actual = dataset.naming.instance_id(Naming::instance_of(index));
        if w.instance_id != Some(actual.as_str()) {
            return Err(ApiError::invalid(
                &format!("{}.instance_id", w.path),
                format!("does not match image record {}", w.id),
            ));
        }
    }
    Ok(index)
}

/// `query_info` of an `is_all` task, as a filter. Fields that only select local images or
/// containers select nothing among registry images.
fn query_info(info: Option<&Map<String, Value>>, dataset: &Dataset) -> Result<Filter, ApiError> {
    let empty = Map::new();
    let f = Fields::new(info.unwrap_or(&empty), "query_info");
    let image_type = f.opt_one_of(
        "image_type",
        &[
            "private_image",
            "shared_image",
            "instance_image",
            "harbor",
            "jfrog",
        ],
    )?;
    let scan_status = f
        .opt_one_of(
            "scan_status",
            &[
                "unscan",
                "success",
                "scanning",
                "failed",
                "download_failed",
                "image_oversized",
            ],
        )?
        .and_then(Status::parse);
    let mut local_only = false;
    for field in [
        "local_image_type",
        "host_id",
        "host_name",
        "public_ip",
        "private_ip",
        "cluster_id",
        "container_id",
        "container_name",
        "pod_id",
        "pod_name",
        "app_name",
    ] {
        local_only |= f.string(field, 0..=512)?.is_some_and(|v| !v.is_empty());
    }
    let time = |name: &str| f.int_in(name, 0..=limits::MAX_TIME_MS);
    let spec = FilterSpec {
        kind: image_type.and_then(Kind::parse),
        namespace: f.string("namespace", 0..=256)?.filter(|v| !v.is_empty()),
        image_name: f.string("image_name", 0..=256)?.filter(|v| !v.is_empty()),
        image_version: f
            .string("image_version", 0..=256)?
            .filter(|v| !v.is_empty()),
        scan_status,
        has_vul: f.bool("has_vul")?,
        image_size: f.int_in("image_size", 0..=i64::MAX)?,
        update: Window::of(
            time("start_latest_update_time")?,
            time("end_latest_update_time")?,
        ),
        scan: Window::of(
            time("start_latest_scan_time")?,
            time("end_latest_scan_time")?,
        ),
        // A local-only field: a registry name no registry has, so nothing matches.
        registry_name: local_only.then_some("\u{0}local"),
        ..FilterSpec::default()
    };
    Ok(Filter::new(&spec, dataset))
}

/// `POST image/image-scan/tasks`. Validates everything first, so a refused call changes
/// nothing; the answer to an accepted one is an empty body.
pub fn create_scan_task(
    sim: &Sim,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
    ending: Ending,
) -> Result<(), ApiError> {
    check_region(headers)?;
    query.string("enterprise_project_id", 1..=256)?;
    let global = query
        .one_of("global_image_type", &["local", "registry"])?
        .unwrap_or("registry");
    let map = json_object(body)?;
    let f = Fields::new(&map, "");
    let scan_scope = f
        .int_in("scan_scope", 0..=limits::SCAN_SCOPE_ALL)?
        .unwrap_or(limits::SCAN_SCOPE_ALL);
    let rate_limit = f
        .int_in("rate_limit", 0..=limits::MAX_RATE_LIMIT)?
        .unwrap_or(0);
    let is_all = f.bool("is_all")?.unwrap_or(false);
    let info = f.object("query_info")?;
    let list = f.array("image_info")?.map_or(&[][..], Vec::as_slice);
    let max = sim.settings.max_scan_task_items();
    if let Some(max) = max
        && list.len() > max
    {
        return Err(ApiError::too_large(format!(
            "request too large: image_info has {} items, at most {max} are allowed",
            list.len()
        )));
    }
    if !is_all && list.is_empty() {
        return Err(ApiError::invalid(
            "image_info",
            "is required when is_all is false",
        ));
    }
    let elements = list
        .iter()
        .enumerate()
        .map(|(n, v)| wanted(n, v))
        .collect::<Result<Vec<_>, _>>()?;
    if !lock(&sim.billing).pay_per_scan() {
        return Err(ApiError::pay_per_scan_off());
    }
    if global == "local" && !elements.is_empty() {
        return Err(ApiError::invalid(
            "image_info[0]",
            "names no local image (this account has none)",
        ));
    }

    let mut dataset = write(&sim.dataset);
    let indices = if is_all {
        if global == "local" {
            Vec::new()
        } else {
            let filter = query_info(info, &dataset)?;
            dataset.matching(&filter, now_ms)
        }
    } else {
        let mut indices = Vec::with_capacity(elements.len());
        let mut unknown = 0;
        let mut first_error = None;
        for w in &elements {
            match locate(&dataset, w) {
                Ok(index) => indices.push(index),
                Err(e) => {
                    unknown += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(error) = first_error {
            sim.stats.update(|s| s.unknown_images += unknown);
            return Err(error);
        }
        indices
    };
    let mut tasks = lock(&sim.tasks);
    let mut billing = lock(&sim.billing);
    let spec = TaskSpec {
        name: format!("manual-scan-{now_ms}"),
        task_type: "manual",
        policy_id: String::new(),
        is_all,
        scan_scope,
        rate_limit,
    };
    let id = tasks.next_id();
    let (mut task, tally) = submission::run(&mut dataset, &mut billing, spec, id, &indices, now_ms);
    task.ending = ending;
    tracing::debug!(task = %task.id, images = indices.len(), duplicates = tally.duplicates, "scan task");
    tasks.push(task);
    submission::count(sim, indices.len(), &tally);
    Ok(())
}

/// `GET image/tasks`.
pub fn list_tasks(sim: &Sim, query: &Query, now_ms: i64) -> Result<Json<Value>, ApiError> {
    query.string("enterprise_project_id", 1..=256)?;
    let global = query.one_of("global_image_type", &["local", "registry"])?;
    let offset = query.int("offset", 0..=limits::MAX_OFFSET, 0)? as usize;
    let limit = query.int("limit", limits::TASK_PAGE_MIN..=limits::PAGE_SIZE, 10)? as usize;
    let family = query
        .one_of("type", &["image_sync", "image_scan"])?
        .and_then(Family::parse)
        .ok_or_else(|| ApiError::invalid("type", "is required"))?;
    let q = TaskQuery {
        family: Some(family),
        task_type: query.one_of("task_type", &["cycle", "manual", "autoSync", "manualSync"])?,
        task_name: query.string("task_name", 1..=256)?,
        task_id: query.string("task_id", 1..=256)?,
        created_from: query.opt_int("create_time", 0..=limits::MAX_TASK_TIME_MS)?,
        ended_by: query.opt_int("end_time", 0..=limits::MAX_TASK_TIME_MS)?,
        finished: query
            .one_of("task_status", &["scanning", "finished"])?
            .map(|s| s == "finished"),
        scan_scope: query.opt_int("scan_scope", 0..=limits::SCAN_SCOPE_ALL)?,
    };
    // Every task here is a registry task; `local` lists nothing.
    if global == Some("local") {
        return Ok(Json(json!({ "data_list": [], "total_num": 0 })));
    }
    let dataset = read(&sim.dataset);
    let tasks = lock(&sim.tasks);
    let total = tasks.matching(&q, now_ms).count();
    let page: Vec<_> = tasks
        .matching(&q, now_ms)
        .skip(offset)
        .take(limit)
        .map(|t| t.view(&dataset, now_ms))
        .collect();
    Ok(Json(json!({ "data_list": page, "total_num": total })))
}

/// `PUT image/image-scan/tasks/{task_id}/stop`: unfinished images go back to what they
/// showed before. Stopping a finished task changes nothing; a full (`is_all`) scan cannot
/// be stopped, as the user guide says.
pub fn stop_scan_task(
    sim: &Sim,
    task_id: &str,
    query: &Query,
    headers: &HeaderMap,
    now_ms: i64,
) -> Result<(), ApiError> {
    check_region(headers)?;
    query.string("enterprise_project_id", 1..=256)?;
    let mut dataset = write(&sim.dataset);
    let mut tasks = lock(&sim.tasks);
    let task = tasks
        .get_mut(task_id)
        .filter(|t| t.family == Family::Scan)
        .ok_or_else(|| ApiError::not_found(format_args!("scan task {task_id}")))?;
    if task.is_all {
        return Err(ApiError::invalid(
            "task_id",
            "a full scan cannot be stopped",
        ));
    }
    if task.is_finished(now_ms) {
        return Ok(());
    }
    let mut billing = lock(&sim.billing);
    for item in &mut task.items {
        if item.finish_ms > now_ms {
            item.withdrawn = true;
            if dataset.withdraw(item.index as usize, item.submitted_ms, now_ms)
                && item.outcome == Status::Success
            {
                billing.cancel_success(item.finish_ms);
            }
        }
    }
    task.stopped_ms = Some(now_ms);
    Ok(())
}

/// `POST image/image-sync/tasks`.
pub fn create_sync_task(
    sim: &Sim,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> Result<(), ApiError> {
    check_region(headers)?;
    query.string("enterprise_project_id", 1..=256)?;
    let map = json_object(body)?;
    let f = Fields::new(&map, "");
    let all = f
        .bool("sync_all_registries")?
        .ok_or_else(|| ApiError::invalid("sync_all_registries", "is required"))?;
    let list = f.array("registry_info")?.map_or(&[][..], Vec::as_slice);
    if !all && list.is_empty() {
        return Err(ApiError::invalid(
            "registry_info",
            "is required when sync_all_registries is false",
        ));
    }
    let mut dataset = write(&sim.dataset);
    let slots: Vec<usize> = if all {
        (0..dataset.registries.len()).collect()
    } else {
        let mut slots = Vec::with_capacity(list.len());
        for (n, value) in list.iter().enumerate() {
            let path = format!("registry_info[{n}]");
            let Value::Object(object) = value else {
                return Err(ApiError::invalid(&path, "must be an object"));
            };
            let item = Fields::new(object, &path);
            let id = item.required("registry_id", 1..=64)?;
            let registry_type = item.string("registry_type", 1..=32)?;
            let slot = dataset
                .registry_by_id(id)
                .filter(|&s| {
                    registry_type.is_none_or(|t| dataset.registries[s].kind.registry_type() == t)
                })
                .ok_or_else(|| ApiError::invalid(&path, "names no registry of this account"))?;
            if !slots.contains(&slot) {
                slots.push(slot);
            }
        }
        slots
    };
    let end = now_ms.saturating_add(sim.settings.sync_ms());
    for &slot in &slots {
        dataset.start_sync(slot, now_ms, end);
    }
    let registries = slots
        .iter()
        .map(|&s| {
            let r = &dataset.registries[s];
            SyncedRegistry {
                id: r.id.clone(),
                name: r.name.clone(),
                kind: r.kind,
            }
        })
        .collect();
    let mut tasks = lock(&sim.tasks);
    let id = tasks.next_id();
    tasks.push(Task {
        id,
        name: format!("manual-sync-{now_ms}"),
        family: Family::Sync,
        task_type: "manualSync",
        policy_id: String::new(),
        begin_ms: now_ms,
        scan_scope: 0,
        rate_limit: 0,
        is_all: all,
        items: Vec::new(),
        refused: Vec::new(),
        registries,
        sync_end_ms: end,
        stopped_ms: None,
        ending: Ending::Normal,
    });
    sim.stats.update(|s| s.sync_task_calls += 1);
    Ok(())
}

/// `GET image/image-sync/tasks/{task_id}/registries`.
pub fn list_sync_registries(
    sim: &Sim,
    task_id: &str,
    query: &Query,
    now_ms: i64,
) -> Result<Json<Value>, ApiError> {
    query.string("enterprise_project_id", 1..=256)?;
    let name = query.string("registry_name", 1..=128)?;
    let types = query.string("registry_type", 1..=256)?;
    let offset = query.int("offset", 0..=limits::MAX_OFFSET, 0)? as usize;
    let limit = query.int("limit", limits::TASK_PAGE_MIN..=limits::PAGE_SIZE, 10)? as usize;
    let status = query.one_of("sync_status", &["finished", "running", "failed"])?;
    if let Some(types) = types
        && types
            .split(',')
            .any(|t| Kind::from_registry_type(t).is_none() && t != "Other")
    {
        return Err(ApiError::invalid(
            "registry_type",
            "must be among Harbor, Jfrog, SwrPrivate, SwrShared, SwrEnterprise, Other",
        ));
    }
    if task_id.is_empty() || task_id.chars().count() > 64 {
        return Err(ApiError::invalid(
            "task_id",
            "must be 1 to 64 characters long",
        ));
    }
    let mut tasks = lock(&sim.tasks);
    let task = tasks
        .get_mut(task_id)
        .filter(|t| t.family == Family::Sync)
        .ok_or_else(|| ApiError::not_found(format_args!("sync task {task_id}")))?;
    let sync_status = if now_ms >= task.sync_end_ms {
        "finished"
    } else {
        "running"
    };
    let matching: Vec<Value> = task
        .registries
        .iter()
        .filter(|r| name.is_none_or(|n| r.name.contains(n)))
        .filter(|r| types.is_none_or(|t| t.split(',').any(|t| t == r.kind.registry_type())))
        .filter(|_| status.is_none_or(|s| s == sync_status))
        .map(|r| {
            json!({
                "registry_id": r.id,
                "registry_name": r.name,
                "registry_type": r.kind.registry_type(),
                "sync_status": sync_status,
                "failed_reason": "",
            })
        })
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    Ok(Json(json!({ "data_list": page, "total_num": total })))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_region_header_is_optional_but_checked() {
        let mut headers = HeaderMap::new();
        assert!(check_region(&headers).is_ok());
        headers.insert("region", HeaderValue::from_static("ap-southeast-1"));
        assert!(check_region(&headers).is_ok());
        headers.insert("region", HeaderValue::from_static(""));
        assert!(
            check_region(&headers)
                .unwrap_err()
                .message
                .contains("region")
        );
        let long = "r".repeat(129);
        headers.insert("region", HeaderValue::from_str(&long).unwrap());
        assert!(check_region(&headers).is_err());
    }
}
