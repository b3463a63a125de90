//! `spawn_app()` and `TestApp`: the real service on a random port, against a
//! brand-new PostgreSQL database (see `database.rs`) that is dropped when the
//! test ends, plus a real HTTP client, `Auth`, `Answer` and one helper per
//! HTTP method the tests use.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use promo_engine::config::{ClusterConfig, Config};
use promo_engine::db::DbPool;
use promo_engine::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::database::TestDatabase;
use super::proxy::DbProxy;

/// The admin every test app is started with.
pub const ADMIN_USERNAME: &str = "admin";
/// The admin's password.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The password of every shopper made through the API.
pub const SHOPPER_PASSWORD: &str = "shopper-password";

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials.
    None,
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// HTTP Basic with a username and password.
    Basic(String, String),
    /// A raw `Authorization` header value.
    Header(String),
}

/// A running service and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub pool: DbPool,
    pub http: reqwest::Client,
    pub admin: Auth,
    pub handle: Option<ServerHandle>,
    /// Where the service writes `.eml` files (`DATA_DIR/mail`).
    pub mail_dir: std::path::PathBuf,
    /// Shared by the instances of one cluster; dropped with the last of them.
    pub(super) database: Arc<TestDatabase>,
    pub(super) _data_dir: Arc<tempfile::TempDir>,
}

/// A response: its status and its JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `code` of an error body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// The service against a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The service against a fresh database, with the configuration adjusted.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::new();
    let mut config = test_config(&database.url());
    adjust(&mut config);
    start(config, database).await
}

/// The service reaching its database through `proxy`.
pub async fn spawn_app_through(proxy: &DbProxy) -> TestApp {
    spawn_app_through_with(proxy, |_| {}).await
}

/// The service reaching its database through `proxy`, with the configuration adjusted.
pub async fn spawn_app_through_with(proxy: &DbProxy, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::new();
    let via_proxy = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        proxy.port(),
        database.name
    );
    let mut config = test_config(&via_proxy);
    adjust(&mut config);
    start(config, database).await
}

/// Two instances in cluster mode on one fresh database and the NATS server
/// of `PROMO_ENGINE_TEST_NATS_URL` (default `nats://127.0.0.1:4222`), named
/// `a` and `b`, under a subject prefix of their own (so concurrent tests
/// never hear each other). `b` starts once `a` has migrated the database.
pub async fn spawn_cluster_pair() -> (TestApp, TestApp) {
    let nats_url = std::env::var("PROMO_ENGINE_TEST_NATS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let subject_prefix = format!("test.{}", uuid::Uuid::new_v4().simple());
    let database = TestDatabase::new();
    let shared = TestDatabase {
        name: database.name.clone(),
    };
    let instance = |instance_id: &str| {
        let mut config = test_config(&database.url());
        config.cluster = Some(ClusterConfig {
            nats_url: nats_url.clone(),
            instance_id: instance_id.to_owned(),
            subject_prefix: subject_prefix.clone(),
        });
        config
    };
    let (config_a, config_b) = (instance("a"), instance("b"));
    let a = start(config_a, database).await;
    let b = start(config_b, shared).await;
    (a, b)
}

fn test_config(database_url: &str) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("default config");
    config.database_url = database_url.to_owned();
    config.database_pool_size = 4;
    config.bind = "127.0.0.1:0".parse().expect("bind address");
    config.http_workers = Some(1);
    config.admin_username = ADMIN_USERNAME.into();
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.reservation_hold = Duration::from_secs(2);
    // Tests send many sign-ups from one address; the limit has its own test.
    config.rate_limit_subscribe_per_minute = 0;
    config
}

async fn start(mut config: Config, database: TestDatabase) -> TestApp {
    let data_dir = Arc::new(tempfile::tempdir().expect("a data directory"));
    if config.data_dir == Config::from_lookup(|_| None).expect("defaults").data_dir {
        config.data_dir = data_dir.path().to_owned();
    }
    start_with_data_dir(config, database, data_dir).await
}

async fn start_with_data_dir(
    config: Config,
    database: TestDatabase,
    data_dir: Arc<tempfile::TempDir>,
) -> TestApp {
    let mail_dir = config.data_dir.join("mail");
    let application = Application::build(config)
        .await
        .expect("the application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let pool = application.pool().clone();
    let handle = application.handle();
    actix_web::rt::spawn(application.run_until_stopped());
    let mut app = TestApp {
        address,
        pool,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client"),
        admin: Auth::None,
        handle: Some(handle),
        mail_dir,
        database: Arc::new(database),
        _data_dir: data_dir,
    };
    app.admin = app.login(ADMIN_USERNAME, ADMIN_PASSWORD).await;
    app
}

impl TestApp {
    /// Sends a request and reads the answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        request = authorize(request, auth);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read_answer(request.send().await.expect("request sent")).await
    }

    /// Sends a request and reads the answer, or the transport error (a
    /// refused or dropped connection: the service was killed meanwhile).
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        request = authorize(request, auth);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        Ok(answer_from(status, headers, &bytes))
    }

    /// Sends raw bytes with a content type.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let request = self
            .http
            .request(method, format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body);
        read_answer(authorize(request, auth).send().await.expect("request sent")).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, auth: &Auth) -> Answer {
        self.call(Method::GET, path, auth, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.call(Method::POST, path, auth, Some(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.call(Method::PUT, path, auth, Some(body)).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.call(Method::PATCH, path, auth, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, auth: &Auth) -> Answer {
        self.call(Method::DELETE, path, auth, None).await
    }

    /// A token for this username and password (panics on failure).
    pub async fn login(&self, username: &str, password: &str) -> Auth {
        let answer = self
            .post(
                "/api/auth/token/",
                &Auth::None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "login failed: {:?}",
            answer.body
        );
        Auth::Token(answer.body["token"].as_str().expect("token").to_owned())
    }

    /// The URL of this test's own database.
    pub fn database_url(&self) -> String {
        self.database.url()
    }

    /// Rows in a table, read straight from the database.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let client = self.pool.get().await.expect("connection");
        let sql = format!("SELECT count(*) FROM {table}");
        client.query_one(&sql, &[]).await.expect("count").get(0)
    }
}

fn authorize(request: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    match auth {
        Auth::None => request,
        Auth::Token(token) => request.bearer_auth(token),
        Auth::Basic(username, password) => request.basic_auth(username, Some(password)),
        Auth::Header(value) => request.header("authorization", value),
    }
}

async fn read_answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    answer_from(status, headers, &bytes)
}

fn answer_from(status: StatusCode, headers: reqwest::header::HeaderMap, bytes: &[u8]) -> Answer {
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}
