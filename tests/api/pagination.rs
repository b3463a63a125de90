//! The paginated list shape: `count`, `next`, `previous`, `results`.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn lists_page_with_links_to_their_neighbours() {
    let app = spawn_app().await;
    for index in 0..25 {
        app.create_store(&format!("Store {index:02}"), 1.0, 1.0)
            .await;
    }
    let first = app.get("/api/market/stores/", &app.admin).await;
    assert_eq!(first.body["count"], 25);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 10);
    assert_eq!(first.body["previous"], serde_json::Value::Null);
    let next = first.body["next"].as_str().unwrap();
    assert!(next.ends_with("/api/market/stores/?page=2"), "{next}");

    let second = app.get("/api/market/stores/?page=2", &app.admin).await;
    assert_eq!(second.body["results"][0]["name"], "Store 10");
    assert!(second.body["previous"]
        .as_str()
        .unwrap()
        .ends_with("/api/market/stores/"));
    assert!(second.body["next"].as_str().unwrap().ends_with("?page=3"));

    let last = app.get("/api/market/stores/?page=3", &app.admin).await;
    assert_eq!(last.body["results"].as_array().unwrap().len(), 5);
    assert_eq!(last.body["next"], serde_json::Value::Null);

    let sized = app
        .get("/api/market/stores/?page_size=20&page=2", &app.admin)
        .await;
    assert_eq!(sized.body["results"].as_array().unwrap().len(), 5);
    assert!(sized.body["previous"]
        .as_str()
        .unwrap()
        .ends_with("?page_size=20"));
}

#[actix_web::test]
async fn a_page_past_the_last_is_not_found() {
    let app = spawn_app().await;
    app.create_store("Only", 1.0, 1.0).await;
    for query in ["?page=2", "?page=0", "?page=abc"] {
        let answer = app
            .get(&format!("/api/market/stores/{query}"), &app.admin)
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{query}");
        assert_eq!(answer.code(), "not_found");
    }
}

#[actix_web::test]
async fn an_empty_list_has_an_empty_first_page() {
    let app = spawn_app().await;
    let answer = app.get("/api/market/products/", &app.admin).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["count"], 0);
    assert_eq!(answer.body["results"], serde_json::json!([]));
}

#[actix_web::test]
async fn page_size_is_capped_at_one_hundred() {
    let app = spawn_app().await;
    let segment_names: Vec<String> = (0..105).map(|index| format!("Segment {index}")).collect();
    for name in &segment_names {
        app.create_segment(name).await;
    }
    let answer = app
        .get("/api/users/user-segments/?page_size=1000", &app.admin)
        .await;
    assert_eq!(answer.body["count"], 105);
    assert_eq!(answer.body["results"].as_array().unwrap().len(), 100);
    let bad = app
        .get("/api/users/user-segments/?page_size=zero", &app.admin)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn the_in_memory_promo_lists_page_like_every_list() {
    let app = spawn_app().await;
    let mut promo_ids = Vec::new();
    let mut segment_id = 0;
    for index in 0..3 {
        let market = app
            .create_market_at(19.4326 + 0.001 * f64::from(index), -99.1332)
            .await;
        segment_id = market.segment_id;
        let promo = app
            .create_running_promo(&market, 3, serde_json::json!({}))
            .await;
        promo_ids.push(promo["id"].clone());
    }
    let shopper = app
        .create_shopper("pager", Some((19.4326, -99.1332)), &[segment_id])
        .await;
    for path in [
        "/api/promotions/flash-promos/running/",
        "/api/promotions/flash-promos/eligible/",
    ] {
        let first = app.get(&format!("{path}?page_size=2"), &shopper.auth).await;
        assert_eq!(first.status, StatusCode::OK, "{path}");
        assert_eq!(first.body["count"], 3, "{path}");
        assert_eq!(first.body["results"].as_array().unwrap().len(), 2);
        assert_eq!(first.body["previous"], serde_json::Value::Null);
        let next = first.body["next"].as_str().unwrap();
        assert!(
            next.ends_with(&format!("{path}?page_size=2&page=2")),
            "{next}"
        );

        let second = app
            .get(&format!("{path}?page_size=2&page=2"), &shopper.auth)
            .await;
        assert_eq!(second.body["results"].as_array().unwrap().len(), 1);
        assert_eq!(second.body["next"], serde_json::Value::Null);
        assert!(second.body["previous"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{path}?page_size=2")));

        let past = app
            .get(&format!("{path}?page_size=2&page=3"), &shopper.auth)
            .await;
        assert_eq!(past.status, StatusCode::NOT_FOUND, "{path}");
    }
    // running/ is in id order; eligible/ nearest first (the first store is
    // where the shopper stands) and adds the distance.
    let running = app
        .get("/api/promotions/flash-promos/running/", &shopper.auth)
        .await;
    let ids: Vec<_> = running.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(ids, promo_ids);
    let eligible = app
        .get("/api/promotions/flash-promos/eligible/", &shopper.auth)
        .await;
    assert_eq!(eligible.body["results"][0]["id"], promo_ids[0]);
    assert!(eligible.body["results"][0]["distance_km"].as_f64().unwrap() < 0.01);
    assert_eq!(eligible.body["results"][0]["available"], 3);
}
