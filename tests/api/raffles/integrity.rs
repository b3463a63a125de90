//! What keeps a draw honest beyond the API: a finish never draws on a seed
//! nobody saw committed, the schema ties the commitment to the seed, and a
//! winner's row is never removed by deleting a subscriber.

use reqwest::StatusCode;

use super::proof::add_verified;
use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_finish_without_a_committed_seed_commits_one_and_draws_on_a_retry() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Opened before draws").await;
    add_verified(&app, campaign_id, 3).await;
    let client = app.pool.get().await.expect("connection");
    // As a campaign opened before V8 would be.
    client
        .execute(
            "UPDATE campaigns SET draw_seed = NULL, seed_commitment = NULL WHERE id = $1",
            &[&campaign_id],
        )
        .await
        .expect("unseeded");

    let first = app.finish(campaign_id).await;
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        first.body
    );
    assert_eq!(first.code(), "unavailable");
    assert_eq!(first.body["retry_after"], 1);
    let committed = app.draw(campaign_id).await.body;
    let commitment = committed["seed_commitment"].as_str().expect("commitment");
    assert!(committed.get("seed").is_none(), "{committed}");
    assert_eq!(app.campaign(campaign_id).await["status"], "open");

    let second = app.finish(campaign_id).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    let drawn = app.draw(campaign_id).await.body;
    assert_eq!(
        drawn["seed_commitment"], commitment,
        "the committed seed drew"
    );
}

#[actix_web::test]
async fn the_schema_keeps_the_commitment_and_the_winners() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Kept").await;
    add_verified(&app, campaign_id, 2).await;
    assert_eq!(app.finish(campaign_id).await.status, StatusCode::OK);
    let client = app.pool.get().await.expect("connection");
    let forged = client
        .execute(
            "UPDATE campaigns SET seed_commitment = sha256('other'::bytea) WHERE id = $1",
            &[&campaign_id],
        )
        .await;
    assert!(forged.is_err(), "a commitment that is not the seed's");
    let removed = client
        .execute(
            "DELETE FROM subscribers WHERE id IN \
             (SELECT subscriber_id FROM campaign_winners WHERE campaign_id = $1)",
            &[&campaign_id],
        )
        .await;
    assert!(removed.is_err(), "a winner's subscriber row is kept");
    // Deleting the whole campaign still removes both together.
    let path = format!("/api/raffles/campaigns/{campaign_id}/");
    let deleted = app.delete(&path, &app.admin).await;
    assert!(deleted.status.is_success(), "{:?}", deleted.body);
    assert_eq!(app.count_rows("campaign_winners").await, 0);
}
