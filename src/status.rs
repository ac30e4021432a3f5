//! What `hss-scand status` reports (and, later, `/status`): one struct, rendered as a table
//! for people or as JSON for tools.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::store::{ImageCount, Store, StoreError, SyncRun};

/// How many recent sync runs the report lists.
const RECENT_SYNC_RUNS: i64 = 20;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Present images per target, type and scan status.
    pub inventory: Vec<ImageCount>,
    /// The latest sync runs, newest first.
    pub sync_runs: Vec<SyncRun>,
}

pub async fn gather(store: &Store) -> Result<StatusReport, StoreError> {
    Ok(StatusReport {
        inventory: store.image_counts().await?,
        sync_runs: store.recent_sync_runs(RECENT_SYNC_RUNS).await?,
    })
}

/// Milliseconds since the epoch as an RFC 3339 UTC time, or `-`.
fn time(ms: Option<i64>) -> String {
    ms.and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(
            || "-".to_owned(),
            |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &mut header.iter().copied());
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}

impl StatusReport {
    pub fn to_table(&self) -> String {
        let mut out = String::from("INVENTORY (present images)\n");
        if self.inventory.is_empty() {
            out.push_str("no images yet: run `hss-scand sync`\n");
        } else {
            let rows: Vec<Vec<String>> = self
                .inventory
                .iter()
                .map(|c| {
                    vec![
                        c.target.clone(),
                        c.image_type.clone(),
                        c.scan_status.clone(),
                        c.images.to_string(),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["TARGET", "IMAGE TYPE", "SCAN STATUS", "IMAGES"],
                &rows,
            ));
        }
        out.push_str("\nRECENT SYNCS\n");
        if self.sync_runs.is_empty() {
            out.push_str("none yet\n");
        } else {
            let rows: Vec<Vec<String>> = self
                .sync_runs
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.target.clone(),
                        r.image_type.clone(),
                        time(Some(r.started_at)),
                        r.outcome.clone(),
                        r.pages.to_string(),
                        r.seen.to_string(),
                        r.new.to_string(),
                        r.changed.to_string(),
                        r.deleted.to_string(),
                        r.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "RUN",
                    "TARGET",
                    "IMAGE TYPE",
                    "STARTED",
                    "OUTCOME",
                    "PAGES",
                    "SEEN",
                    "NEW",
                    "CHANGED",
                    "DELETED",
                    "ERROR",
                ],
                &rows,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let t = table(&["A", "LONGER"], &[vec!["xxxx".into(), "y".into()]]);
        assert_eq!(t, "A     LONGER\nxxxx  y\n");
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(time(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(time(None), "-");
    }
}
