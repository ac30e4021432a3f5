//! Hostile answers that are not errors: a 200 whose page is wrong in a way a client must
//! survive (an offset that is ignored, an image twice, records without their identity,
//! records of another type, an absurd `total_num`), and a body that trickles out. They are
//! scripted faults of the image list calls, deprecated and current alike, and each one
//! changes the same records every time, so a test can assert exactly what it saw.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::watch;

use super::kind::Kind;

/// Which identifying fields [`PageFault::MissingFields`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// `namespace`, `image_name` and `image_version`.
    Names,
    /// `id`.
    Id,
}

/// A change to one list page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFault {
    /// The page is computed as if `offset` were 0.
    IgnoreOffset,
    /// The page's last record is replaced by a copy of its first.
    DuplicateImage,
    /// Records at even positions of the page lose these fields.
    MissingFields(Identity),
    /// Records at even positions of the page claim the next image type (and its registry
    /// type): `private_image` becomes `shared_image`, …, `jfrog` becomes `private_image`.
    WrongType,
    /// `total_num` says this, whatever the page holds.
    HugeTotal(u64),
}

impl PageFault {
    /// Applies the fault to a page (`{"total_num", "data_list"}`) already answered.
    /// [`PageFault::IgnoreOffset`] acts before the page is computed, so not here.
    pub fn apply(self, page: &mut Value) {
        match self {
            PageFault::IgnoreOffset => {}
            PageFault::HugeTotal(total) => page["total_num"] = Value::from(total),
            PageFault::DuplicateImage => {
                if let Some(list) = page["data_list"].as_array_mut()
                    && list.len() >= 2
                {
                    let first = list[0].clone();
                    if let Some(last) = list.last_mut() {
                        *last = first;
                    }
                } else if let Some(list) = page["data_list"].as_array_mut()
                    && let Some(first) = list.first().cloned()
                {
                    list.push(first);
                }
            }
            PageFault::MissingFields(identity) => {
                for record in even_records(page) {
                    let fields: &[&str] = match identity {
                        Identity::Names => &["namespace", "image_name", "image_version"],
                        Identity::Id => &["id"],
                    };
                    for field in fields {
                        record.remove(*field);
                    }
                }
            }
            PageFault::WrongType => {
                for record in even_records(page) {
                    let next = record
                        .get("image_type")
                        .and_then(Value::as_str)
                        .and_then(Kind::parse)
                        .map_or(Kind::Private, |k| {
                            Kind::ALL[(k.code() as usize + 1) % Kind::ALL.len()]
                        });
                    record.insert("image_type".into(), next.wire().into());
                    if record.contains_key("registry_type") {
                        record.insert("registry_type".into(), next.registry_type().into());
                    }
                }
            }
        }
    }
}

/// A list page as an answer, with the fault applied if there is one. Without a fault the
/// page is serialised directly, the fast path a benchmark takes.
pub fn respond<T: serde::Serialize>(page: T, fault: Option<PageFault>) -> Response {
    use axum::response::IntoResponse as _;
    match fault {
        None => axum::Json(page).into_response(),
        Some(fault) => match serde_json::to_value(page) {
            Ok(mut value) => {
                fault.apply(&mut value);
                axum::Json(value).into_response()
            }
            Err(_) => super::error::ApiError::server(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
        },
    }
}

fn even_records(page: &mut Value) -> impl Iterator<Item = &mut serde_json::Map<String, Value>> {
    page["data_list"]
        .as_array_mut()
        .into_iter()
        .flat_map(|list| list.iter_mut().step_by(2))
        .filter_map(Value::as_object_mut)
}

/// Sends `response`'s body `bytes` at a time, one chunk every `interval`; stops early at
/// shutdown, so a trickling answer never holds the simulator open.
pub async fn trickle(
    response: Response,
    bytes: usize,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(full) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let chunk = bytes.max(1);
    let length = full.len();
    let stream = futures::stream::unfold(
        (full, shutdown, true),
        move |(mut rest, mut shutdown, first)| async move {
            if rest.is_empty() || *shutdown.borrow() {
                return None;
            }
            if !first {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return None,
                }
            }
            let piece: Bytes = rest.split_to(chunk.min(rest.len()));
            Some((
                Ok::<_, std::convert::Infallible>(piece),
                (rest, shutdown, false),
            ))
        },
    );
    let mut parts = parts;
    // Announce the whole length, so the client knows it is waiting for more bytes.
    parts.headers.insert(
        axum::http::header::CONTENT_LENGTH,
        axum::http::HeaderValue::from(length),
    );
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn page() -> Value {
        json!({"total_num": 3, "data_list": [
            {"id": 1, "namespace": "a", "image_name": "x", "image_version": "1", "image_type": "private_image"},
            {"id": 2, "namespace": "b", "image_name": "y", "image_version": "2", "image_type": "harbor", "registry_type": "Harbor"},
            {"id": 3, "namespace": "c", "image_name": "z", "image_version": "3", "image_type": "jfrog", "registry_type": "Jfrog"},
        ]})
    }

    #[test]
    fn each_page_fault_changes_what_it_says() {
        let mut p = page();
        PageFault::DuplicateImage.apply(&mut p);
        assert_eq!(p["data_list"][2]["id"], 1);
        let mut p = page();
        PageFault::MissingFields(Identity::Names).apply(&mut p);
        assert!(p["data_list"][0].get("namespace").is_none());
        assert_eq!(p["data_list"][1]["namespace"], "b");
        assert!(p["data_list"][2].get("image_version").is_none());
        let mut p = page();
        PageFault::MissingFields(Identity::Id).apply(&mut p);
        assert!(p["data_list"][0].get("id").is_none() && p["data_list"][1]["id"] == 2);
        let mut p = page();
        PageFault::WrongType.apply(&mut p);
        assert_eq!(p["data_list"][0]["image_type"], "shared_image");
        assert_eq!(p["data_list"][2]["image_type"], "private_image");
        assert_eq!(p["data_list"][2]["registry_type"], "SwrPrivate");
        let mut p = page();
        PageFault::HugeTotal(1_000_000_000_000).apply(&mut p);
        assert_eq!(p["total_num"], 1_000_000_000_000u64);
        let mut one = json!({"total_num": 1, "data_list": [{"id": 7}]});
        PageFault::DuplicateImage.apply(&mut one);
        assert_eq!(one["data_list"].as_array().map(Vec::len), Some(2));
    }
}
