//! A campaign's closing time moves freely while it is ahead, and is fixed
//! once it has passed: a passed closing time never reopens the campaign.

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_closing_time_moves_while_ahead_and_is_fixed_once_passed() {
    let app = spawn_app().await;
    let in_minutes = |minutes| Utc::now() + Duration::minutes(minutes);
    let campaign_id = app
        .create_campaign_with("Moving close", json!({"closes_at": in_minutes(60)}))
        .await["id"]
        .as_i64()
        .expect("id");
    let path = format!("/api/raffles/campaigns/{campaign_id}/");
    let earlier = app
        .patch(&path, &app.admin, json!({"closes_at": in_minutes(30)}))
        .await;
    assert_eq!(earlier.status, StatusCode::OK, "{:?}", earlier.body);
    let later = app
        .patch(&path, &app.admin, json!({"closes_at": in_minutes(90)}))
        .await;
    assert_eq!(
        later.status,
        StatusCode::OK,
        "still ahead: {:?}",
        later.body
    );
    // Closing it now is still a move while open ...
    let now = app
        .patch(&path, &app.admin, json!({"closes_at": Utc::now()}))
        .await;
    assert_eq!(now.status, StatusCode::OK, "{:?}", now.body);
    // ... after which no change reopens it, nor clears the closing time.
    for closes_at in [json!(in_minutes(60)), json!(in_minutes(-2)), json!(null)] {
        let moved = app
            .patch(&path, &app.admin, json!({"closes_at": closes_at}))
            .await;
        assert_eq!(moved.status, StatusCode::CONFLICT, "{:?}", moved.body);
        assert_eq!(moved.code(), "campaign_closed");
    }
    let entry = app.subscribe(campaign_id, "late@example.com").await;
    assert_eq!(entry.code(), "campaign_closed", "{:?}", entry.body);
}
