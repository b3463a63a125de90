//! `TestDatabase`: a fresh `promo_test_<uuid>` database per test, dropped
//! (with its connections, `WITH (FORCE)`) when the test ends.
//!
//! `TEST_DATABASE_URL` names the server (default: postgres on 127.0.0.1:5432).

/// The PostgreSQL server the tests use (`TEST_DATABASE_URL`).
pub(super) fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own for one test, dropped (with its connections) afterwards.
pub struct TestDatabase {
    pub(super) name: String,
}

impl TestDatabase {
    /// A new, unique name; the database itself is created by whoever first migrates it.
    pub fn new() -> TestDatabase {
        TestDatabase {
            name: format!("promo_test_{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Its URL on the test server.
    pub fn url(&self) -> String {
        let mut config: tokio_postgres::Config = server_url().parse().expect("TEST_DATABASE_URL");
        config.dbname(&self.name);
        let host = "127.0.0.1";
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_owned();
        format!("postgres://{user}@{host}:{port}/{}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context we may block; use a thread of its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) =
                    tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
                        .await
                        .ok()?;
                tokio::spawn(connection);
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                client.batch_execute(&sql).await.ok()
            })
        });
        let _ = dropper.join();
    }
}
