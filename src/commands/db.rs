//! `hss-scand db copy`: the configured SQLite database into an empty PostgreSQL database.
//! The work is the store's (`store::copy`); this names the two databases, with passwords
//! redacted, and prints the rows copied per table.

use anyhow::Context as _;

use super::output::{print, table};
use crate::config::redact::url_text;
use crate::domain::Clock;
use crate::startup::Startup;
use crate::store::copy;

pub(super) async fn copy(startup: &Startup, to: &str) -> anyhow::Result<()> {
    let from = &startup.settings().database.url;
    let copied = copy::sqlite_to_postgres(from, to, &Clock::system())
        .await
        .with_context(|| format!("could not copy {} to {}", url_text(from), url_text(to)))?;
    let rows: Vec<Vec<String>> = copied
        .iter()
        .map(|c| vec![c.table.to_owned(), c.rows.to_string()])
        .collect();
    let mut text = format!("copied {} to {}\n", url_text(from), url_text(to));
    text.push_str(&table(&["TABLE", "ROWS"], &rows));
    text.push_str("the leader lease was not copied; point database.url at the copy to use it\n");
    print(&text).context("could not print what was copied")
}
