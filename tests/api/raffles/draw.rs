//! The draw: no verified subscriber, concurrent calls, and fairness.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn finishing_without_a_verified_subscriber_leaves_the_campaign_open() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Quiet raffle").await;
    let answer = app.finish(campaign_id).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code(), "no_verified_subscribers");
    let unconfirmed = app.subscribe(campaign_id, "unconfirmed@example.com").await;
    assert_eq!(unconfirmed.status, StatusCode::CREATED);
    let answer = app.finish(campaign_id).await;
    assert_eq!(answer.code(), "no_verified_subscribers");
    let campaign = app.campaign(campaign_id).await;
    assert_eq!(campaign["status"], "open");
    assert_eq!(
        app.subscribe(campaign_id, "still-open@example.com")
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.finish(campaign_id + 99).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn concurrent_finishes_draw_exactly_one_winner() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Busy raffle").await;
    for n in 0..5 {
        app.subscribe_verified(campaign_id, &format!("player{n}@example.com"))
            .await;
    }
    let path = format!("/api/raffles/campaigns/{campaign_id}/finish_campaign/");
    let calls = (0..12).map(|i| {
        let path = path.clone();
        let app = &app;
        async move {
            if i % 2 == 0 {
                app.get(&path, &app.admin).await
            } else {
                app.post(&path, &app.admin, json!({})).await
            }
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    let winner = &answers[0].body["winner"];
    assert!(answers.iter().all(|a| &a.body["winner"] == winner));
    let client = app.pool.get().await.expect("connection");
    let won: i64 = client
        .query_one(
            "SELECT count(*) FROM email_outbox WHERE subject LIKE 'You won%'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(won, 1, "one winner's email, however many calls");
    let admin_mails = app.mail_files_to("marketing@example.com", 1).await;
    assert!(admin_mails[0].text.contains("5 verified entries"));
}

#[actix_web::test]
async fn the_draw_is_uniform_over_the_verified_subscribers() {
    const CAMPAIGNS: usize = 300;
    const ENTRANTS: usize = 3;
    let app = spawn_app().await;
    // Fixtures straight into the database: the draw, not the sign-up, is under test.
    let client = app.pool.get().await.expect("connection");
    let campaign_ids: Vec<i64> = client
        .query(
            // Open, so with a committed random seed (a draw needs one).
            "INSERT INTO campaigns (name, admin_email, email_subject, email_template, \
                                    draw_seed, seed_commitment) \
             SELECT 'Draw ' || n, 'boss@example.com', 'Confirm', 'Go: {{verify_url}}', \
                    seed, sha256(seed) \
             FROM (SELECT n, sha256(gen_random_uuid()::text::bytea) AS seed \
                   FROM generate_series(1, $1::int) n) fresh RETURNING id",
            &[&(CAMPAIGNS as i32)],
        )
        .await
        .expect("campaigns")
        .iter()
        .map(|row| row.get(0))
        .collect();
    client
        .execute(
            "INSERT INTO subscribers (campaign_id, email, verified, verification_code_hash) \
             SELECT c, 'p' || k || '@example.com', true, \
                    sha256((c || '/' || k)::text::bytea) \
             FROM unnest($1::bigint[]) c, generate_series(0, $2::int - 1) k \
             ORDER BY c, k",
            &[&campaign_ids, &(ENTRANTS as i32)],
        )
        .await
        .expect("subscribers");
    // An unverified entrant never wins.
    client
        .execute(
            "INSERT INTO subscribers (campaign_id, email, verified, verification_code_hash) \
             SELECT c, 'unverified@example.com', false, sha256(c::text::bytea) \
             FROM unnest($1::bigint[]) c",
            &[&campaign_ids],
        )
        .await
        .expect("unverified subscribers");

    let mut wins = [0usize; ENTRANTS];
    for campaign_id in &campaign_ids {
        let answer = app.finish(*campaign_id).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let email = answer.body["winner"]["email"]
            .as_str()
            .expect("winner email");
        let position: usize = email
            .trim_start_matches('p')
            .trim_end_matches("@example.com")
            .parse()
            .unwrap_or_else(|_| panic!("{email} is not a verified entrant"));
        wins[position] += 1;
    }
    // Chi-square with 2 degrees of freedom: P(statistic > 27.6) = 1e-6 for a
    // fair draw, so this never fails by chance; a draw that always or never
    // picks one position fails it by far.
    let expected = CAMPAIGNS as f64 / ENTRANTS as f64;
    let chi_square: f64 = wins
        .iter()
        .map(|&observed| (observed as f64 - expected).powi(2) / expected)
        .sum();
    assert!(
        chi_square < 27.6,
        "wins per position {wins:?}: chi-square {chi_square}"
    );
}
