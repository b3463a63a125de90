//! The service under load, as every scenario reaches it: [`Target`] (one
//! keep-alive HTTP client, the base URLs, an admin token and a tag that names
//! this run's data) and the set-up steps the scenarios share: `create`,
//! `running_promos`, `shoppers`, `campaign`, and [`sign_in_admin`].
//!
//! With several `--url`s (instances of one cluster) every set-up step goes
//! through the first; the scenarios that measure through all of them spread
//! their requests or sessions round-robin over [`Target::urls`].

use std::time::Duration;

use anyhow::{ensure, Context};
use futures_util::future::join_all;
use futures_util::{stream, StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::config::Config;
use crate::db::{self, DbPool};

/// Set-up requests in flight: enough to keep the service busy (10,000 promos
/// are 21,000 creations, which store by store, ten at a time, waited on
/// 3,000 round trips in a row), few enough not to queue behind its pool.
const SETUP_IN_FLIGHT: usize = 32;

/// Promos (each on its own product) per store.
const PROMOS_PER_STORE: usize = 10;

/// Signs the admin of `config` in at the service at `url`: its token.
pub(super) async fn sign_in_admin(
    http: &Client,
    config: &Config,
    url: &str,
) -> anyhow::Result<String> {
    let password = config
        .admin_password
        .clone()
        .context("set ADMIN_PASSWORD to the service's admin password")?;
    let answer: Value = http
        .post(format!("{url}/api/auth/token/"))
        .json(&json!({"username": config.admin_username, "password": password}))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?
        .json()
        .await?;
    Ok(answer["token"]
        .as_str()
        .context("admin login refused")?
        .to_owned())
}

/// The service under load and an admin token for it.
pub(super) struct Target {
    /// One client for every request: its connections are kept alive.
    pub(super) http: Client,
    /// The first base URL, without a trailing `/`: set-up goes through it.
    pub(super) url: String,
    /// Every base URL given (the first included), without a trailing `/`.
    pub(super) urls: Vec<String>,
    /// The admin's token.
    pub(super) admin: String,
    /// Names this run's data apart from earlier runs' (hex milliseconds).
    pub(super) tag: String,
}

impl Target {
    /// Signs the admin in at the first of `urls` (a token from one instance
    /// of a cluster is good at every instance: tokens live in PostgreSQL).
    pub(super) async fn connect(config: &Config, urls: Vec<String>) -> anyhow::Result<Target> {
        let http = Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(30))
            .build()?;
        let urls: Vec<String> = urls
            .iter()
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect();
        let url = urls.first().context("give at least one --url")?.clone();
        let admin = sign_in_admin(&http, config, &url).await?;
        let tag = format!("{:x}", chrono::Utc::now().timestamp_millis());
        Ok(Target {
            http,
            url,
            urls,
            admin,
            tag,
        })
    }

    /// `POST path` as the admin; the created id.
    pub(super) async fn create(&self, path: &str, body: Value) -> anyhow::Result<i64> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(
            status == StatusCode::CREATED,
            "{path} answered {status}: {body}"
        );
        body["id"].as_i64().context("no id in the answer")
    }

    /// A segment, and `count` running promos, each on its own product, ten to a
    /// store, with stores spread up to `spread_km` around (0, 0). Created
    /// [`SETUP_IN_FLIGHT`] at a time, in order (the ids come back in creation
    /// order).
    pub(super) async fn running_promos(
        &self,
        count: usize,
        quantity: usize,
        spread_km: f64,
    ) -> anyhow::Result<(i64, Vec<i64>)> {
        let segment = self
            .create(
                "/api/users/user-segments/",
                json!({"name": format!("loadgen {}", self.tag)}),
            )
            .await?;
        let stores = self
            .stores(count.div_ceil(PROMOS_PER_STORE), spread_km)
            .await?;
        let slots = stores
            .iter()
            .flat_map(|store| {
                (0..PROMOS_PER_STORE).map(move |product_index| (*store, product_index))
            })
            .take(count);
        let promos = stream::iter(slots)
            .map(|(store, product_index)| {
                self.running_promo(store, product_index, segment, quantity)
            })
            .buffered(SETUP_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok((segment, promos))
    }

    /// `count` stores on a line from (0, 0) to `spread_km` south-west.
    async fn stores(&self, count: usize, spread_km: f64) -> anyhow::Result<Vec<i64>> {
        stream::iter(0..count)
            .map(|store_index| {
                let offset = spread_km / 111.32 * (store_index as f64 / count as f64);
                self.create(
                    "/api/market/stores/",
                    json!({"name": format!("loadgen {} #{store_index}", self.tag), "latitude": offset, "longitude": -offset}),
                )
            })
            .buffered(SETUP_IN_FLIGHT)
            .try_collect()
            .await
    }

    /// A product of `store` and a promo on it that started 5 s ago, for an hour.
    async fn running_promo(
        &self,
        store: i64,
        product_index: usize,
        segment: i64,
        quantity: usize,
    ) -> anyhow::Result<i64> {
        let product = self
            .create(
                "/api/market/products/",
                json!({"store_id": store, "name": format!("item {product_index}"), "regular_price": "100.00"}),
            )
            .await?;
        let start = chrono::Utc::now() - chrono::Duration::seconds(5);
        self.create(
            "/api/promotions/flash-promos/",
            json!({"product_id": product, "promo_price": "50.00", "segment_ids": [segment],
                   "start_time": start.to_rfc3339(), "end_time": (start + chrono::Duration::hours(1)).to_rfc3339(),
                   "quantity": quantity, "max_distance_km": 2.0}),
        )
        .await
    }

    /// Shoppers with tokens, placed at (0, 0) through `PATCH me/`.
    pub(super) async fn shoppers(
        &self,
        pool: &DbPool,
        count: usize,
        segment: i64,
    ) -> anyhow::Result<Vec<String>> {
        let created = db::demo::insert_token_shoppers(
            pool,
            &format!("loadgen{}_", self.tag),
            count,
            &[segment],
        )
        .await?;
        let tokens: Vec<String> = created.into_iter().map(|(_, _, token)| token).collect();
        for chunk in tokens.chunks(64) {
            let moves = chunk.iter().map(|token| self.place(token));
            for moved in join_all(moves).await {
                moved?;
            }
        }
        Ok(tokens)
    }

    /// Places one shopper at (0, 0); a connection the server closed as the
    /// request went out (a keep-alive race) is tried again, twice at most.
    async fn place(&self, token: &str) -> anyhow::Result<()> {
        let mut attempts = 0;
        loop {
            let moved = self
                .http
                .patch(format!("{}/api/users/clients-profiles/me/", self.url))
                .bearer_auth(token)
                .json(&json!({"latitude": 0.0, "longitude": 0.0}))
                .send()
                .await;
            match moved {
                Ok(answer) => {
                    ensure!(answer.status().is_success(), "could not place a shopper");
                    return Ok(());
                }
                Err(error) if attempts < 2 && (error.is_connect() || error.is_request()) => {
                    attempts += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// A new campaign for a load run.
    pub(super) async fn campaign(&self) -> anyhow::Result<i64> {
        self.create(
            "/api/raffles/campaigns/",
            json!({
                "name": format!("loadgen {}", self.tag),
                "admin_email": "loadgen-admin@example.com",
                "email_subject": "Confirm your entry",
                "email_template": "Confirm: {{verify_url}}",
            }),
        )
        .await
    }
}
