//! `db::fence` against the real PostgreSQL: a fence decides for good whether
//! a transaction committed, waiting while it is still open.

use std::time::Duration;

use futures_util::FutureExt;
use promo_engine::db::fence::{run_fenced, settle, FencedWork, Settled, WriteFailure};
use uuid::Uuid;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_fenced_transaction_that_committed_settles_as_committed() {
    let app = spawn_app().await;
    let work: FencedWork<'_, i64> = Box::new(|transaction| {
        async move {
            let row = transaction.query_one("SELECT 41 + 1", &[]).await?;
            Ok(row.get::<_, i32>(0).into())
        }
        .boxed()
    });
    let answer = run_fenced(&app.pool, Duration::from_secs(5), work).await;
    assert_eq!(answer.ok(), Some(42));
    // Its token is the only one; settling it says it committed.
    let client = app.pool.get().await.expect("connection");
    let token: Uuid = client
        .query_one("SELECT token FROM write_fences", &[])
        .await
        .expect("one fence")
        .get(0);
    let settled = settle(&app.pool, token).await.expect("settled");
    assert_eq!(settled, Settled::Committed);
}

#[actix_web::test]
async fn an_unknown_token_settles_as_not_committed_and_its_transaction_can_never_commit() {
    let app = spawn_app().await;
    let token = Uuid::new_v4();
    assert_eq!(
        settle(&app.pool, token).await.expect("settled"),
        Settled::NotCommitted
    );
    // A late transaction carrying that token now fails at its fence insert.
    let mut client = app.pool.get().await.expect("connection");
    let transaction = client.transaction().await.expect("transaction");
    let late = transaction
        .execute(
            "INSERT INTO write_fences (token, committed) VALUES ($1, true)",
            &[&token],
        )
        .await;
    assert!(late.is_err(), "the fenced-off transaction wrote its token");
    // And the answer does not change.
    drop(transaction);
    assert_eq!(
        settle(&app.pool, token).await.expect("settled"),
        Settled::NotCommitted
    );
}

#[actix_web::test]
async fn a_fence_waits_for_an_open_transaction_and_then_follows_its_commit() {
    let app = spawn_app().await;
    let token = Uuid::new_v4();
    let mut client = app.pool.get().await.expect("connection");
    let transaction = client.transaction().await.expect("transaction");
    transaction
        .execute(
            "INSERT INTO write_fences (token, committed) VALUES ($1, true)",
            &[&token],
        )
        .await
        .expect("token inserted");
    // Still open: the fence cannot tell yet (its lock wait times out).
    assert!(settle(&app.pool, token).await.is_err());
    // Settling while the commit lands gives the commit's answer.
    let pool = app.pool.clone();
    let settling = tokio::spawn(async move { settle(&pool, token).await });
    transaction.commit().await.expect("committed");
    let settled = settling.await.expect("task").expect("settled");
    assert_eq!(settled, Settled::Committed);
}

#[actix_web::test]
async fn a_failure_before_the_commit_is_reported_not_committed() {
    let app = spawn_app().await;
    let work: FencedWork<'_, ()> = Box::new(|transaction| {
        async move {
            transaction.batch_execute("SELECT 1/0").await?;
            Ok(())
        }
        .boxed()
    });
    let failure = run_fenced(&app.pool, Duration::from_secs(5), work)
        .await
        .expect_err("division by zero fails");
    assert!(
        matches!(failure, WriteFailure::NotCommitted(_)),
        "{failure:?}"
    );
    assert_eq!(app.count_rows("write_fences").await, 0);
}
