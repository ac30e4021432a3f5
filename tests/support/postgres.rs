//! A fresh PostgreSQL database per test (or benchmark run), created on the server an
//! environment variable names and dropped when the value is, however the test ends, so that
//! runs never see each other's rows. The variable's role must be allowed to create databases.

use std::time::Duration;

use sqlx::{ConnectOptions as _, Connection as _};

/// The server the ignored PostgreSQL tests use; `.ci/run` starts one and sets it.
pub const TEST_URL_VAR: &str = "HSS_SCAND_TEST_POSTGRES_URL";

/// A database of its own; dropped with the value.
pub struct TestDatabase {
    /// Its URL, password included (never print it).
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// A new, empty database on the server `var` names.
    pub async fn create(var: &str) -> TestDatabase {
        let admin = std::env::var(var)
            .unwrap_or_else(|_| panic!("{var} must name a PostgreSQL server for this test"));
        TestDatabase::create_on(&admin).await
    }

    /// A new, empty database on the server of the URL `admin`.
    pub async fn create_on(admin: &str) -> TestDatabase {
        let name = format!("hss_scand_test_{:016x}", rand::random::<u64>());
        let mut conn = connect(admin).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("the role may create databases");
        conn.close().await.expect("close");
        let mut url = url::Url::parse(admin).expect("the server's URL parses");
        url.set_path(&name);
        TestDatabase {
            url: url.to_string(),
            admin: admin.to_owned(),
            name,
        }
    }

    /// The URL as a TOML string, for `database.url`.
    pub fn toml(&self) -> String {
        format!("{:?}", self.url)
    }

    /// The URL with `host:port` in place of the server's (through a proxy).
    pub fn via(&self, host_port: &str) -> String {
        let mut url = url::Url::parse(&self.url).expect("the URL parses");
        let (host, port) = host_port.rsplit_once(':').expect("host:port");
        url.set_host(Some(host)).expect("a host");
        url.set_port(Some(port.parse().expect("a port")))
            .expect("a port");
        url.to_string()
    }
}

async fn connect(url: &str) -> sqlx::PgConnection {
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    tokio::time::timeout(Duration::from_secs(10), options.connect())
        .await
        .expect("the server answers")
        .expect("the server takes the login")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // On a thread of its own with a runtime of its own: the test's runtime may be the one
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
