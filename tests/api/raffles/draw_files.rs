//! How the public draw files are served: a finished entries file carries its
//! digest as its `ETag`, is cached for good and answers `If-None-Match` with
//! 304; the links it publishes never come from the request's `Host`.

use reqwest::StatusCode;
use serde_json::json;

use super::proof::add_verified;
use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_finished_entries_file_is_tagged_with_its_digest_and_answers_304() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Tagged draw").await;
    add_verified(&app, campaign_id, 5).await;
    let finished = app.finish(campaign_id).await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    let draw = app.draw(campaign_id).await.body;
    let digest = draw["entries_digest"].as_str().expect("digest").to_owned();
    assert_eq!(draw["winners_count"], 1, "{draw}");
    assert_eq!(draw["winners"].as_array().map(Vec::len), Some(1));
    let url = format!(
        "{}/api/raffles/campaigns/{campaign_id}/draw/entries.txt",
        app.address
    );

    let full = app.http.get(&url).send().await.expect("entries.txt");
    assert_eq!(full.status(), StatusCode::OK);
    let tag = full.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(tag, format!("\"{digest}\""));
    assert_eq!(
        full.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(full.text().await.expect("text").lines().count(), 5);

    for _ in 0..2 {
        // The first from the database, the second from memory.
        let again = app
            .http
            .get(&url)
            .header("if-none-match", &tag)
            .send()
            .await
            .expect("conditional");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()["etag"].to_str().expect("etag"), tag);
        assert!(again.text().await.expect("body").is_empty());
    }
    let other = app
        .http
        .get(&url)
        .header("if-none-match", "\"something else\"")
        .send()
        .await
        .expect("other tag");
    assert_eq!(other.status(), StatusCode::OK);
}

#[actix_web::test]
async fn the_entries_link_ignores_the_host_the_caller_sends() {
    let app = spawn_app().await;
    let campaign_id = app
        .create_campaign_with("Linked draw", json!({"winners_count": 1}))
        .await["id"]
        .as_i64()
        .expect("id");
    add_verified(&app, campaign_id, 2).await;
    assert_eq!(app.finish(campaign_id).await.status, StatusCode::OK);
    let draw: serde_json::Value = app
        .http
        .get(format!(
            "{}/api/raffles/campaigns/{campaign_id}/draw/",
            app.address
        ))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .expect("draw")
        .json()
        .await
        .expect("json");
    let url = draw["entries_url"].as_str().expect("entries_url");
    assert!(!url.contains("evil.example"), "{url}");
    assert!(
        url.ends_with(&format!(
            "/api/raffles/campaigns/{campaign_id}/draw/entries.txt"
        )),
        "{url}"
    );
}
