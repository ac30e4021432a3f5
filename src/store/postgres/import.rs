//! Filling an empty database for `hss-scand db copy` (see `store::copy`): every table in one
//! transaction, each chunk of rows one `INSERT … SELECT FROM UNNEST(…)` with its ids as they
//! were, then each id sequence moved past the largest copied id so that new rows do not
//! collide with copied ones.

use sqlx::{Postgres, Transaction};

use super::{Context, PgBackend};
use crate::store::StoreError;
use crate::store::copy::{Column, Kind, Rows, Table};

/// The write transaction of a copy.
pub(in crate::store) struct Import {
    tx: Transaction<'static, Postgres>,
    /// What copied process owners get in front (see [`Kind::Owner`]).
    host_prefix: String,
}

impl PgBackend {
    pub(in crate::store) async fn import(&self) -> Result<Import, StoreError> {
        let tx = self.pool.begin().await.context("fill the database")?;
        Ok(Import {
            tx,
            host_prefix: self.owner.host_prefix().to_owned(),
        })
    }
}

impl Import {
    /// Whether `table` has any row.
    pub(in crate::store) async fn has_rows(&mut self, table: &Table) -> Result<bool, StoreError> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            table.name
        )))
        .fetch_one(&mut *self.tx)
        .await
        .context("check that the database is empty")
    }

    /// Inserts a chunk of `table`'s rows as they are.
    pub(in crate::store) async fn write(
        &mut self,
        table: &Table,
        rows: Rows,
    ) -> Result<(), StoreError> {
        let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
        let arrays: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .map(|(n, (_, kind))| {
                let array = match kind {
                    Kind::Int => "BIGINT[]",
                    Kind::Text | Kind::Owner => "TEXT[]",
                    Kind::Bool => "BOOLEAN[]",
                };
                format!("${}::{array}", n + 1)
            })
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
            table.name,
            names.join(", "),
            arrays.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (column, (_, kind)) in rows.columns.into_iter().zip(table.columns) {
            query = match column {
                Column::Int(values) => query.bind(values),
                Column::Bool(values) => query.bind(values),
                Column::Text(values) if *kind == Kind::Owner => query.bind(
                    values
                        .into_iter()
                        .map(|v| v.map(|owner| format!("{}{owner}", self.host_prefix)))
                        .collect::<Vec<_>>(),
                ),
                Column::Text(values) => query.bind(values),
            };
        }
        query
            .execute(&mut *self.tx)
            .await
            .context("write a table's rows")?;
        Ok(())
    }

    /// After the last chunk of `table`: its id sequence moved past the copied ids, and its
    /// statistics gathered, so that the first plans over the copy are good ones.
    pub(in crate::store) async fn finish(&mut self, table: &Table) -> Result<(), StoreError> {
        if table.has_id {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), \
                 COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {0}",
                table.name
            )))
            .execute(&mut *self.tx)
            .await
            .context("move an id sequence past the copied ids")?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {}", table.name)))
            .execute(&mut *self.tx)
            .await
            .context("gather a copied table's statistics")?;
        Ok(())
    }

    pub(in crate::store) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.context("fill the database")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::store::copy::{NOT_COPIED, TABLES};
    use crate::store::postgres::testing::{TEST_URL_VAR, TestDatabase};

    /// The copy writes every stored column of every table but the lease: a column or table
    /// added by a later migration must be added to `store::copy::TABLES` too.
    #[tokio::test]
    #[ignore = "needs PostgreSQL: .ci/run starts one and sets HSS_SCAND_TEST_POSTGRES_URL"]
    async fn the_copy_knows_every_table_and_column_of_the_postgres_schema() {
        let db = TestDatabase::create(TEST_URL_VAR).await;
        let backend = PgBackend::open(&db.url, 0).await.expect("open");
        let tables: BTreeSet<String> = sqlx::query_scalar(
            "SELECT table_name::TEXT FROM information_schema.tables \
             WHERE table_schema = current_schema()",
        )
        .fetch_all(&backend.pool)
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
            let columns: BTreeSet<String> = sqlx::query_scalar(
                "SELECT column_name::TEXT FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 AND is_generated = 'NEVER'",
            )
            .bind(table.name)
            .fetch_all(&backend.pool)
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
