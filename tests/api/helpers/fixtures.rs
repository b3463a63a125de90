//! Fixtures: shoppers, stores, products, segments, a `Market` and running
//! promos to build tests on, made through the API (or, for many shoppers at
//! once, straight in the database), and `in_seconds` for the times they need.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::app::{Answer, Auth, TestApp, SHOPPER_PASSWORD};

/// A shopper created through the API.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub profile_id: i64,
    pub user_id: i64,
    pub username: String,
    pub auth: Auth,
}

impl TestApp {
    /// A store made by the admin: the created body.
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

    /// A product of `store_id` made by the admin: the created body.
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

    /// A segment made by the admin: its id.
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
