//! A cancel reaches no entrant: the campaign's queued emails are given up on
//! in the cancel itself, the mailer never sends them, and a requeue of the
//! outbox skips them.

use reqwest::StatusCode;
use serde_json::json;

use super::smtp_to;
use crate::helpers::{spawn_app_with, TestApp};
use crate::mail::{unused_port, SmtpSink};

/// Each unsent email of the campaign: (recipient, given up, last error).
async fn unsent_of(app: &TestApp, campaign_id: i64) -> Vec<(String, bool, Option<String>)> {
    let client = app.pool.get().await.expect("connection");
    let rows = client
        .query(
            "SELECT recipient, abandoned_at IS NOT NULL, last_error FROM email_outbox \
             WHERE campaign_id = $1 AND sent_at IS NULL ORDER BY id",
            &[&campaign_id],
        )
        .await
        .expect("outbox");
    rows.iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

#[actix_web::test]
async fn a_cancel_gives_up_on_queued_confirmations_and_a_requeue_skips_them() {
    // The mail server is down while the entries come in: their emails wait.
    let port = unused_port();
    let app = spawn_app_with(smtp_to(format!("smtp://127.0.0.1:{port}"))).await;
    let cancelled = app.create_campaign("Called off").await;
    for email in ["ana@example.com", "bob@example.com"] {
        assert_eq!(
            app.subscribe(cancelled, email).await.status,
            StatusCode::CREATED
        );
    }
    assert_eq!(unsent_of(&app, cancelled).await.len(), 2, "both queued");

    let answer = app.campaign_action(cancelled, "cancel").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let unsent = unsent_of(&app, cancelled).await;
    assert_eq!(unsent.len(), 2);
    for (recipient, abandoned, error) in &unsent {
        assert!(abandoned, "{recipient} is given up on by the cancel");
        assert_eq!(error.as_deref(), Some("campaign cancelled"));
    }

    let requeued = app
        .post("/api/outbox/requeue/", &app.admin, json!({}))
        .await;
    assert_eq!(requeued.status, StatusCode::OK, "{:?}", requeued.body);
    assert_eq!(requeued.body, json!({"requeued": 0, "ids": []}));

    // The mail server comes back: another campaign's entrant gets mail, the
    // cancelled campaign's never do.
    let sink = SmtpSink::start_on_port(port);
    let other = app.create_campaign("Still on").await;
    app.subscribe(other, "cleo@example.com").await;
    sink.wait_for("cleo@example.com", 1).await;
    let to_entrants: Vec<_> = sink
        .received()
        .into_iter()
        .filter(|mail| {
            mail.envelope_to
                .iter()
                .any(|to| to == "ana@example.com" || to == "bob@example.com")
        })
        .collect();
    assert!(to_entrants.is_empty(), "{to_entrants:?}");
    assert!(unsent_of(&app, cancelled).await.iter().all(|row| row.1));
}
