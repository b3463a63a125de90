//! `/healthz`, `/readyz`, and behaviour while the database is away.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_app_through, wait_until, DbProxy};

#[actix_web::test]
async fn health_and_readiness_answer_when_all_is_well() {
    let app = spawn_app().await;
    let health = app.get("/healthz", &crate::helpers::Auth::None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let ready = app.get("/readyz/", &crate::helpers::Auth::None).await;
    assert_eq!(ready.status, StatusCode::OK);
}

#[actix_web::test]
async fn readiness_fails_while_the_database_is_unreachable_and_recovers_after() {
    let proxy = DbProxy::start().await;
    let app = spawn_app_through(&proxy).await;
    app.create_store("Before", 1.0, 1.0).await;

    proxy.cut();
    let ready = app.get("/readyz", &crate::helpers::Auth::None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.code(), "unavailable");
    // The process itself is still up and says so.
    assert_eq!(
        app.get("/healthz", &crate::helpers::Auth::None)
            .await
            .status,
        StatusCode::OK
    );
    // A request that needs the database fails cleanly, with no partial write.
    let stores = app.get("/api/market/stores/", &app.admin).await;
    assert_eq!(
        stores.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        stores.body
    );
    assert_eq!(stores.code(), "unavailable");

    proxy.restore();
    let recovered = wait_until(Duration::from_secs(15), || async {
        app.get("/readyz", &crate::helpers::Auth::None).await.status == StatusCode::OK
    })
    .await;
    assert!(recovered, "readiness did not come back");
    let stores = app.get("/api/market/stores/", &app.admin).await;
    assert_eq!(stores.status, StatusCode::OK);
    assert_eq!(stores.body["count"], 1);
    app.create_store("After", 2.0, 2.0).await;
}
