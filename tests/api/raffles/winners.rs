//! Several winners: distinct, verified, in a stable draw order that a repeat
//! (with or without `Idempotency-Key`) answers again, one email per winner
//! and one to the admin naming them all, over a real SMTP conversation too.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::smtp_to;
use crate::helpers::{spawn_app, spawn_app_with, Auth};
use crate::mail::SmtpSink;

fn emails(winners: &Value) -> Vec<String> {
    winners
        .as_array()
        .expect("a list of winners")
        .iter()
        .map(|winner| winner["email"].as_str().expect("email").to_owned())
        .collect()
}

#[actix_web::test]
async fn a_draw_picks_distinct_verified_winners_and_a_repeat_answers_them_in_order() {
    let app = spawn_app().await;
    let campaign = app
        .create_campaign_with("Three stays", json!({"winners_count": 3}))
        .await;
    let campaign_id = campaign["id"].as_i64().expect("id");
    let mut verified = HashSet::new();
    for n in 0..5 {
        let email = format!("player{n}@example.com");
        app.subscribe_verified(campaign_id, &email).await;
        verified.insert(email);
    }
    app.subscribe(campaign_id, "unconfirmed@example.com").await;

    let path = format!("/api/raffles/campaigns/{campaign_id}/finish_campaign/");
    let keyed = |key: &'static str| {
        app.http
            .post(format!("{}{path}", app.address))
            .bearer_auth(match &app.admin {
                Auth::Token(token) => token.clone(),
                other => panic!("the admin signs in with a token, not {other:?}"),
            })
            .header("idempotency-key", key)
            .json(&json!({}))
    };
    let first = keyed("draw-1").send().await.expect("answer");
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.expect("JSON");
    let winners = emails(&first["winners"]);
    assert_eq!(winners.len(), 3);
    assert_eq!(winners.iter().collect::<HashSet<_>>().len(), 3, "distinct");
    assert!(
        winners.iter().all(|email| verified.contains(email)),
        "{winners:?}"
    );
    assert_eq!(first["winner"], first["winners"][0], "winner is the first");
    assert_eq!(first["campaign"]["winners"], first["winners"]);

    let replayed: Value = keyed("draw-1")
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(replayed, first, "the same key answers the first answer");
    let again = app.get(&path, &app.admin).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        emails(&again.body["winners"]),
        winners,
        "same winners, same order"
    );
    let listed = app.campaign(campaign_id).await;
    assert_eq!(emails(&listed["winners"]), winners);

    for winner in &winners {
        let mail = app.mail_files_to(winner, 2).await;
        assert!(
            mail.iter()
                .any(|mail| mail.subject == "You won: Three stays"),
            "{winner}"
        );
    }
    let admin = app
        .mail_files_to("marketing@example.com", 1)
        .await
        .remove(0);
    let lines: Vec<&str> = admin.text.lines().map(str::trim_end).collect();
    for (at, winner) in winners.iter().enumerate() {
        let line = format!("{}. {winner}", at + 1);
        assert!(lines.contains(&line.as_str()), "{line} in {}", admin.text);
    }
    assert!(admin.text.contains("5 verified entries"), "{}", admin.text);
    let client = app.pool.get().await.expect("connection");
    let won: i64 = client
        .query_one(
            "SELECT count(*) FROM email_outbox WHERE subject LIKE 'You won%'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(won, 3, "one email per winner, however many calls");
}

#[actix_web::test]
async fn more_prizes_than_verified_entries_make_every_verified_entry_a_winner() {
    let app = spawn_app().await;
    let campaign = app
        .create_campaign_with("Plenty", json!({"winners_count": 1000}))
        .await;
    let campaign_id = campaign["id"].as_i64().expect("id");
    app.subscribe_verified(campaign_id, "ana@example.com").await;
    app.subscribe_verified(campaign_id, "bo@example.com").await;
    app.subscribe(campaign_id, "unconfirmed@example.com").await;
    let finished = app.finish(campaign_id).await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    let mut winners = emails(&finished.body["winners"]);
    winners.sort();
    assert_eq!(winners, ["ana@example.com", "bo@example.com"]);
}

#[actix_web::test]
async fn each_winner_and_the_admin_get_their_email_over_smtp() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(smtp_to(sink.url())).await;
    let campaign = app
        .create_campaign_with("Two prizes", json!({"winners_count": 2}))
        .await;
    let campaign_id = campaign["id"].as_i64().expect("id");
    for email in ["ana@example.com", "bo@example.com", "cy@example.com"] {
        let entered = app.subscribe(campaign_id, email).await;
        assert_eq!(entered.status, StatusCode::CREATED);
        let link = sink.wait_for(email, 1).await.remove(0);
        let link = app.local_link(&link.verify_link().expect("a link"));
        assert_eq!(
            app.follow(&link, "application/json").await.0,
            StatusCode::OK
        );
    }
    let finished = app.finish(campaign_id).await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    let winners = emails(&finished.body["winners"]);
    for winner in &winners {
        let mails = sink.wait_for(winner, 2).await;
        assert!(mails
            .iter()
            .any(|mail| mail.subject == "You won: Two prizes"));
    }
    let admin = sink.wait_for("marketing@example.com", 1).await.remove(0);
    assert_eq!(admin.subject, "Winners drawn: Two prizes");
    for winner in &winners {
        assert!(admin.text.contains(winner.as_str()), "{}", admin.text);
    }
    assert!(admin.text.contains("3 verified entries"), "{}", admin.text);
    let loser = ["ana@example.com", "bo@example.com", "cy@example.com"]
        .into_iter()
        .find(|email| !winners.iter().any(|winner| winner == email))
        .expect("one entrant did not win");
    // Every email of the draw has arrived by now (one transaction queued them).
    let to_loser = sink
        .received()
        .into_iter()
        .filter(|mail| mail.to == loser)
        .count();
    assert_eq!(to_loser, 1, "only the confirmation to {loser}");
}
