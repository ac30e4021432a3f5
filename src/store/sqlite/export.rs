//! Reading every row of a table for `hss-scand db copy` (see `store::copy`), in one read
//! transaction for all tables, so that the copy is one moment of the database even while a
//! daemon writes to it.

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, Sqlite, Transaction};

use super::{Context, SqliteBackend};
use crate::store::StoreError;
use crate::store::copy::{Column, Kind, ROWS_PER_CHUNK, Rows, Table};

/// A read transaction over the whole database.
pub(in crate::store) struct Export {
    tx: Transaction<'static, Sqlite>,
}

impl SqliteBackend {
    pub(in crate::store) async fn export(&self) -> Result<Export, StoreError> {
        let tx = self.reader.begin().await.context("read the database")?;
        Ok(Export { tx })
    }
}

impl Export {
    /// The rows of `table` in its copy order, [`ROWS_PER_CHUNK`] at a time.
    pub(in crate::store) fn rows<'a>(
        &'a mut self,
        table: &'a Table,
    ) -> impl Stream<Item = Result<Rows, StoreError>> + Send + 'a {
        let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            names.join(", "),
            table.name,
            table.order_by
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch(&mut *self.tx)
            .try_chunks(ROWS_PER_CHUNK)
            .map_err(|err| err.1)
            .map(move |chunk| {
                let rows = chunk.context("read a table to copy")?;
                decode(table, &rows)
            })
    }
}

/// A chunk of SQLite rows as columns; flags become booleans.
fn decode(table: &Table, rows: &[SqliteRow]) -> Result<Rows, StoreError> {
    let what = "read a table to copy";
    let mut columns = Vec::with_capacity(table.columns.len());
    for (n, (_, kind)) in table.columns.iter().enumerate() {
        columns.push(match kind {
            Kind::Int => Column::Int(
                rows.iter()
                    .map(|r| r.try_get::<Option<i64>, _>(n))
                    .collect::<Result<_, _>>()
                    .context(what)?,
            ),
            Kind::Text | Kind::Owner => Column::Text(
                rows.iter()
                    .map(|r| r.try_get::<Option<String>, _>(n))
                    .collect::<Result<_, _>>()
                    .context(what)?,
            ),
            Kind::Bool => Column::Bool(
                rows.iter()
                    .map(|r| Ok(r.try_get::<Option<i64>, _>(n)?.map(|v| v != 0)))
                    .collect::<Result<_, sqlx::Error>>()
                    .context(what)?,
            ),
        });
    }
    Ok(Rows {
        columns,
        len: rows.len(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::store::copy::{NOT_COPIED, TABLES};

    /// What the copy reads is every stored column of every table but the lease: a column or
    /// table added by a later migration must be added to `store::copy::TABLES` too.
    #[tokio::test]
    async fn the_copy_knows_every_table_and_column_of_the_sqlite_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let backend = SqliteBackend::open(&url, 0).await.expect("open");
        let tables: BTreeSet<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&backend.reader)
        .await
        .expect("tables")
        .into_iter()
        .collect();
        let want: BTreeSet<String> = TABLES
            .iter()
            .map(|t| t.name)
            .chain(NOT_COPIED)
            .map(str::to_owned)
            .collect();
        assert_eq!(tables, want);
        for table in &TABLES {
            // `hidden` is 0 for stored columns, 2 or 3 for generated ones.
            let columns: BTreeSet<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0")
                    .bind(table.name)
                    .fetch_all(&backend.reader)
                    .await
                    .expect("columns")
                    .into_iter()
                    .collect();
            let copied: BTreeSet<String> =
                table.columns.iter().map(|(c, _)| (*c).to_owned()).collect();
            assert_eq!(columns, copied, "{}", table.name);
        }
        crate::store::Backend::close(&backend).await;
    }
}
