//! A fresh PostgreSQL database per test, created through the server that
//! `HSS_SCAND_TEST_POSTGRES_URL` names (whose role must be allowed to create databases) and
//! dropped when the test ends, however it ends, so that runs never see each other's rows.

use std::time::Duration;

use sqlx::{ConnectOptions as _, Connection as _};

/// The variable that names the test server; `.ci/run` sets it.
pub(crate) const URL_VAR: &str = "HSS_SCAND_TEST_POSTGRES_URL";

/// A database of its own for one test; dropped with the value.
pub(crate) struct TestDatabase {
    pub(crate) url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    pub(crate) async fn create() -> TestDatabase {
        let admin = std::env::var(URL_VAR)
            .unwrap_or_else(|_| panic!("{URL_VAR} must name a PostgreSQL server for this test"));
        let name = format!("hss_scand_test_{:016x}", rand::random::<u64>());
        let mut conn = connect(&admin).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("the test role may create databases");
        conn.close().await.expect("close");
        let mut url = url::Url::parse(&admin).expect("the test server's URL parses");
        url.set_path(&name);
        TestDatabase {
            url: url.to_string(),
            admin,
            name,
        }
    }
}

async fn connect(url: &str) -> sqlx::PgConnection {
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    tokio::time::timeout(Duration::from_secs(10), options.connect())
        .await
        .expect("the test server answers")
        .expect("the test server takes the login")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // On a thread of its own with a runtime of its own: a test's runtime may be the one
        // dropping this, and may be shutting down.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut conn = connect(&admin).await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .map(|_| ())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("could not drop the test database {}: {err}", self.name),
            Err(_) => eprintln!(
                "could not drop the test database {}: no connection",
                self.name
            ),
        }
    }
}
