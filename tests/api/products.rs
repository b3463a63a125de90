//! `/api/market/products/`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn products_are_written_with_store_id_and_read_with_the_store_embedded() {
    let app = spawn_app().await;
    let store = app.create_store("TechShop", 19.4326, -99.1332).await;
    let product = app
        .create_product(store["id"].as_i64().unwrap(), "Audífonos XYZ", "999.00")
        .await;
    assert_eq!(product["name"], "Audífonos XYZ");
    assert_eq!(product["regular_price"], "999.00");
    assert_eq!(product["store"], store);

    let shopper = app.create_shopper("ana", None, &[]).await;
    let path = format!("/api/market/products/{}/", product["id"]);
    assert_eq!(app.get(&path, &shopper.auth).await.body, product);
    let listed = app.get("/api/market/products/", &shopper.auth).await;
    assert_eq!(listed.body["results"][0], product);

    let other = app.create_store("Other", 1.0, 1.0).await;
    let moved = app
        .patch(
            &path,
            &app.admin,
            json!({"store_id": other["id"], "regular_price": 850}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["store"]["name"], "Other");
    assert_eq!(moved.body["regular_price"], "850.00");

    let replaced = app
        .put(
            &path,
            &app.admin,
            json!({"store_id": store["id"], "name": "Audífonos Pro", "regular_price": "1299.5"}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.body["regular_price"], "1299.50");

    assert_eq!(
        app.delete(&path, &app.admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, &app.admin).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn invalid_products_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let store = app.create_store("TechShop", 1.0, 1.0).await;
    let store_id = store["id"].as_i64().unwrap();
    let cases = [
        (
            json!({"store_id": store_id, "name": "P", "regular_price": "-5.00"}),
            "regular_price",
        ),
        (
            json!({"store_id": store_id, "name": "P", "regular_price": 0}),
            "regular_price",
        ),
        (
            json!({"store_id": store_id, "name": "P", "regular_price": "1.999"}),
            "regular_price",
        ),
        (
            json!({"store_id": store_id, "name": "P", "regular_price": "cheap"}),
            "regular_price",
        ),
        (
            json!({"store_id": store_id, "name": "", "regular_price": "1.00"}),
            "name",
        ),
        (
            json!({"store_id": "1", "name": "P", "regular_price": "1.00"}),
            "store_id",
        ),
        (
            json!({"store_id": 999_999, "name": "P", "regular_price": "1.00"}),
            "store_id",
        ),
        (json!({"name": "P", "regular_price": "1.00"}), "store_id"),
    ];
    for (body, field) in cases {
        let answer = app
            .post("/api/market/products/", &app.admin, body.clone())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            answer.body
        );
        assert_eq!(answer.code(), "validation_error");
        assert!(
            answer.body["fields"][field].is_array(),
            "{body}: {:?}",
            answer.body
        );
    }
    assert_eq!(app.count_rows("products").await, 0);
}

#[actix_web::test]
async fn moving_a_product_to_an_unknown_store_changes_nothing() {
    let app = spawn_app().await;
    let store = app.create_store("TechShop", 1.0, 1.0).await;
    let product = app
        .create_product(store["id"].as_i64().unwrap(), "P", "10.00")
        .await;
    let path = format!("/api/market/products/{}/", product["id"]);
    let answer = app
        .patch(
            &path,
            &app.admin,
            json!({"store_id": 424242, "name": "Changed"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body["fields"]["store_id"].is_array());
    assert_eq!(app.get(&path, &app.admin).await.body["name"], "P");
}

#[actix_web::test]
async fn a_regular_price_at_or_below_a_live_promo_s_price_is_refused() {
    let app = spawn_app().await;
    let market = app.create_market_at(19.43, -99.13).await;
    let promo = app.create_running_promo(&market, 1, json!({})).await;
    let path = format!("/api/market/products/{}/", market.product_id);
    for price in ["499.00", "100.00"] {
        let answer = app
            .patch(&path, &app.admin, json!({"regular_price": price}))
            .await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{:?}", answer.body);
        assert_eq!(answer.code(), "promo_price_not_below_regular");
    }
    let answer = app
        .put(
            &path,
            &app.admin,
            json!({"store_id": market.store_id, "name": "Renamed", "regular_price": "450"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{:?}", answer.body);
    let product = app.get(&path, &app.admin).await.body;
    assert_eq!(product["regular_price"], "999.00", "nothing was changed");
    assert_eq!(product["name"], "Audífonos XYZ");
    // Just above the promo's price, and any raise, are fine.
    for price in ["499.01", "1200.00"] {
        let answer = app
            .patch(&path, &app.admin, json!({"regular_price": price}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }
    // A promo that has ended holds nothing back.
    let client = app.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE flash_promos SET start_time = now() - interval '2 hours', \
             end_time = now() - interval '1 hour' WHERE id = $1",
            &[&promo["id"].as_i64().unwrap()],
        )
        .await
        .unwrap();
    let answer = app
        .patch(&path, &app.admin, json!({"regular_price": "10.00"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
}

#[actix_web::test]
async fn a_price_cut_racing_a_new_promo_never_leaves_the_promo_at_or_above_it() {
    let app = spawn_app().await;
    let market = app.create_market_at(19.43, -99.13).await;
    let mut products = Vec::new();
    for n in 0..12 {
        let product = app
            .create_product(market.store_id, &format!("P{n}"), "999.00")
            .await;
        products.push(product["id"].as_i64().unwrap());
    }
    let races = products.iter().map(|&product_id| {
        let app = &app;
        let segment_id = market.segment_id;
        async move {
            let promo = app.post(
                "/api/promotions/flash-promos/",
                &app.admin,
                json!({
                    "product_id": product_id, "promo_price": "600.00",
                    "start_time": crate::helpers::in_seconds(-60),
                    "end_time": crate::helpers::in_seconds(3600),
                    "segment_ids": [segment_id],
                }),
            );
            let product_path = format!("/api/market/products/{product_id}/");
            let cut = app.patch(
                &product_path,
                &app.admin,
                json!({"regular_price": "500.00"}),
            );
            let (promo, cut) = futures_util::join!(promo, cut);
            // At most one of the two may win.
            assert!(
                !(promo.status == StatusCode::CREATED && cut.status == StatusCode::OK),
                "both won: {:?} {:?}",
                promo.body,
                cut.body
            );
        }
    });
    futures_util::future::join_all(races).await;
    let client = app.pool.get().await.unwrap();
    let priced_above: i64 = client
        .query_one(
            "SELECT count(*) FROM flash_promos f JOIN products p ON p.id = f.product_id \
             WHERE f.promo_price >= p.regular_price",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(priced_above, 0);
}
