//! `spawn_app()` and `TestApp`: the real service on a random port, against a
//! brand-new PostgreSQL database that is dropped when the test ends, plus a
//! real HTTP client and one helper per endpoint the tests use.
//!
//! `TEST_DATABASE_URL` names the server (default: postgres on 127.0.0.1:5432);
//! each test gets its own `promo_test_<uuid>` database on it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use promo_engine::cli::fault_proxy::FaultProxy;
use promo_engine::config::Config;
use promo_engine::db::DbPool;
use promo_engine::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const SHOPPER_PASSWORD: &str = "shopper-password";

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Token(String),
    Basic(String, String),
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
    database: TestDatabase,
    _data_dir: Arc<tempfile::TempDir>,
}

/// A shopper created through the API.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub profile_id: i64,
    pub user_id: i64,
    pub username: String,
    pub auth: Auth,
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

fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
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
        database,
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

    pub async fn get(&self, path: &str, auth: &Auth) -> Answer {
        self.call(Method::GET, path, auth, None).await
    }

    pub async fn post(&self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.call(Method::POST, path, auth, Some(body)).await
    }

    pub async fn put(&self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.call(Method::PUT, path, auth, Some(body)).await
    }

    pub async fn patch(&self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.call(Method::PATCH, path, auth, Some(body)).await
    }

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

    pub async fn create_store(&self, name: &str, latitude: f64, longitude: f64) -> Value {
        let answer = self
            .post(
                "/api/market/stores/",
                &self.admin,
                json!({"name": name, "latitude": latitude, "longitude": longitude}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body
    }

    pub async fn create_product(&self, store_id: i64, name: &str, price: &str) -> Value {
        let answer = self
            .post(
                "/api/market/products/",
                &self.admin,
                json!({"store_id": store_id, "name": name, "regular_price": price}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body
    }

    pub async fn create_segment(&self, name: &str) -> i64 {
        let answer = self
            .post(
                "/api/users/user-segments/",
                &self.admin,
                json!({"name": name}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body["id"].as_i64().expect("segment id")
    }

    /// A shopper with a location and segments, logged in with a token.
    pub async fn create_shopper(
        &self,
        username: &str,
        location: Option<(f64, f64)>,
        segment_ids: &[i64],
    ) -> Shopper {
        let (latitude, longitude) = location.map_or((Value::Null, Value::Null), |(lat, lon)| {
            (json!(lat), json!(lon))
        });
        let answer = self
            .post(
                "/api/users/clients-profiles/",
                &self.admin,
                json!({
                    "username": username, "password": SHOPPER_PASSWORD,
                    "email": format!("{username}@example.com"),
                    "latitude": latitude, "longitude": longitude, "segment_ids": segment_ids,
                }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        Shopper {
            profile_id: answer.body["id"].as_i64().expect("profile id"),
            user_id: answer.body["user"]["id"].as_i64().expect("user id"),
            username: username.to_owned(),
            auth: self.login(username, SHOPPER_PASSWORD).await,
        }
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
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Polls `check` until it returns true or `deadline` passes.
pub async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= give_up {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A database of its own for one test, dropped (with its connections) afterwards.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
        TestDatabase {
            name: format!("promo_test_{}", uuid::Uuid::new_v4().simple()),
        }
    }

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

/// The library's [`FaultProxy`] in front of the test server: `cut()`,
/// `restore()`, `port()` and every other fault through `Deref`.
pub struct DbProxy(FaultProxy);

impl DbProxy {
    pub async fn start() -> DbProxy {
        let config: tokio_postgres::Config = server_url().parse().expect("TEST_DATABASE_URL");
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        DbProxy(FaultProxy::start_to(target).await.expect("proxy listens"))
    }
}

impl std::ops::Deref for DbProxy {
    type Target = FaultProxy;

    fn deref(&self) -> &FaultProxy {
        &self.0
    }
}

/// An RFC 3339 time `seconds` from now (negative: in the past).
pub fn in_seconds(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339()
}

/// A store, a product and a segment to build promos on.
#[derive(Debug, Clone)]
pub struct Market {
    pub store_id: i64,
    pub product_id: i64,
    pub segment_id: i64,
    pub latitude: f64,
    pub longitude: f64,
}

impl TestApp {
    /// TechShop at (lat, lon) selling a 999.00 product, and the segment "New users".
    pub async fn create_market_at(&self, latitude: f64, longitude: f64) -> Market {
        let store = self.create_store("TechShop", latitude, longitude).await;
        let store_id = store["id"].as_i64().expect("store id");
        let product = self
            .create_product(store_id, "Audífonos XYZ", "999.00")
            .await;
        let segment_id = match self
            .get("/api/users/user-segments/?page_size=100", &self.admin)
            .await
            .body["results"]
            .as_array()
            .and_then(|segments| {
                segments
                    .iter()
                    .find(|segment| segment["name"] == "New users")
            }) {
            Some(segment) => segment["id"].as_i64().expect("segment id"),
            None => self.create_segment("New users").await,
        };
        Market {
            store_id,
            product_id: product["id"].as_i64().expect("product id"),
            segment_id,
            latitude,
            longitude,
        }
    }

    /// A promo running now for an hour with `quantity` units (fields in `extra` override).
    pub async fn create_running_promo(
        &self,
        market: &Market,
        quantity: u32,
        extra: Value,
    ) -> Value {
        let mut body = json!({
            "product_id": market.product_id, "promo_price": "499.00",
            "start_time": in_seconds(-60), "end_time": in_seconds(3600),
            "segment_ids": [market.segment_id], "quantity": quantity,
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let answer = self
            .post("/api/promotions/flash-promos/", &self.admin, body)
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body
    }

    /// `count` shoppers written straight to the database (hashing a password per
    /// shopper through the API would dominate the test), each given a token and
    /// then placed through the real `PATCH me/`, which also registers them
    /// with the service's in-memory audience.
    pub async fn create_shoppers_quickly(
        &self,
        prefix: &str,
        count: usize,
        location: (f64, f64),
        segment_ids: &[i64],
    ) -> Vec<Shopper> {
        let created =
            promo_engine::db::demo::insert_token_shoppers(&self.pool, prefix, count, segment_ids)
                .await
                .expect("shoppers inserted");
        let client = self.pool.get().await.expect("connection");
        let mut shoppers = Vec::with_capacity(count);
        for (user_id, username, token) in created {
            let profile_id: i64 = client
                .query_one(
                    "SELECT id FROM client_profiles WHERE user_id = $1",
                    &[&user_id],
                )
                .await
                .expect("profile")
                .get(0);
            let shopper = Shopper {
                profile_id,
                user_id,
                username,
                auth: Auth::Token(token),
            };
            self.move_shopper(&shopper, location.0, location.1).await;
            shoppers.push(shopper);
        }
        shoppers.sort_by(|a, b| a.username.cmp(&b.username));
        shoppers
    }

    /// Sets a shopper's live location through `PATCH me/`.
    pub async fn move_shopper(&self, shopper: &Shopper, latitude: f64, longitude: f64) {
        let answer = self
            .patch(
                "/api/users/clients-profiles/me/",
                &shopper.auth,
                json!({"latitude": latitude, "longitude": longitude}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }

    /// Asks to reserve a unit of `promo_id`.
    pub async fn reserve(&self, shopper: &Shopper, promo_id: i64) -> Answer {
        self.post(
            "/api/promotions/promo-reservations/",
            &shopper.auth,
            json!({"promo_id": promo_id}),
        )
        .await
    }
}

/// The real binary serving on its own port, for tests that kill it (`kill -9`).
pub struct ServiceProcess {
    child: std::process::Child,
    pub address: String,
}

impl ServiceProcess {
    /// Starts `promo-engine serve` on `database_url` and waits until it answers.
    pub async fn start(database_url: &str, hold_seconds: u64) -> ServiceProcess {
        ServiceProcess::start_with(database_url, hold_seconds, &[]).await
    }

    /// Starts `promo-engine serve <extra_args>` and waits until it answers.
    pub async fn start_with(
        database_url: &str,
        hold_seconds: u64,
        extra_args: &[&str],
    ) -> ServiceProcess {
        let data_dir = std::env::temp_dir().join("promo-engine-test-processes");
        let data_dir = data_dir.to_string_lossy().into_owned();
        let env = [("DATA_DIR", data_dir.as_str())];
        ServiceProcess::start_with_env(database_url, hold_seconds, extra_args, &env).await
    }

    /// Starts `promo-engine serve <extra_args>` with extra environment variables.
    pub async fn start_with_env(
        database_url: &str,
        hold_seconds: u64,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> ServiceProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_promo-engine"))
            .arg("serve")
            .args(extra_args)
            .env("DATABASE_URL", database_url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RESERVATION_HOLD_SECONDS", hold_seconds.to_string())
            .env("HTTP_WORKERS", "1")
            .env("DATABASE_POOL_SIZE", "4")
            .env("RUST_LOG", "warn")
            .env("RATE_LIMIT_SUBSCRIBE_PER_MINUTE", "0")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the service starts");
        let process = ServiceProcess {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let health = format!("{}/healthz", process.address);
        let up = wait_until(Duration::from_secs(30), || async {
            http.get(&health)
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
        })
        .await;
        assert!(up, "the service did not come up");
        process
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `TestApp` whose service is a separate process on a fresh database.
pub async fn spawn_process_app(hold_seconds: u64) -> (TestApp, ServiceProcess) {
    spawn_process_app_with(hold_seconds, &[]).await
}

/// A `TestApp` whose service is `serve <extra_args>` in a separate process.
pub async fn spawn_process_app_with(
    hold_seconds: u64,
    extra_args: &[&str],
) -> (TestApp, ServiceProcess) {
    spawn_process_app_with_env(hold_seconds, extra_args, &[]).await
}

/// A `TestApp` whose service is `serve <extra_args>` in a separate process,
/// with extra environment variables (`DATA_DIR` is the app's own).
pub async fn spawn_process_app_with_env(
    hold_seconds: u64,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> (TestApp, ServiceProcess) {
    let database = TestDatabase::new();
    let data_dir = Arc::new(tempfile::tempdir().expect("a data directory"));
    let data_path = data_dir.path().to_string_lossy().into_owned();
    let mut env = env.to_vec();
    env.push(("DATA_DIR", &data_path));
    let process =
        ServiceProcess::start_with_env(&database.url(), hold_seconds, extra_args, &env).await;
    let pool = promo_engine::db::create_pool(&database.url(), 2).expect("pool");
    let mut app = TestApp {
        address: process.address.clone(),
        pool,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client"),
        admin: Auth::None,
        handle: None,
        mail_dir: data_dir.path().join("mail"),
        database,
        _data_dir: data_dir,
    };
    app.admin = app.login(ADMIN_USERNAME, ADMIN_PASSWORD).await;
    (app, process)
}
