//! `db::leases` against the real PostgreSQL: a lease is taken once, taken
//! over only after it expires (raising its epoch), a former owner's fenced
//! writes are refused, and a takeover waits for a write already past the
//! fence while a renewal never does.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use promo_engine::db::fence::{run_fenced_under, FencedWork, WriteFailure};
use promo_engine::db::leases::{self, Fence, LeaseKey};
use promo_engine::db::{DbError, DbPool, Violation};

use crate::helpers::spawn_app;

fn fence(owner: &str, epoch: i64) -> Fence {
    Fence {
        key: LeaseKey::promo(7),
        owner: Arc::from(owner),
        epoch,
    }
}

async fn expire(pool: &DbPool) {
    let client = pool.get().await.expect("connection");
    client
        .execute(
            "UPDATE ownership_leases SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .expect("expired");
}

/// A fenced write that leaves a row behind when it commits.
async fn write_marker(pool: &DbPool, lease: &Fence, marker: &str) -> Result<(), WriteFailure> {
    let marker = marker.to_owned();
    let work: FencedWork<'_, ()> = Box::new(move |client| {
        async move {
            client
                .execute(
                    "INSERT INTO cluster_instances (instance_id, seen_at) VALUES ($1, now())",
                    &[&marker],
                )
                .await?;
            Ok(())
        }
        .boxed()
    });
    run_fenced_under(pool, Duration::from_secs(5), Some(lease), work).await
}

async fn has_marker(pool: &DbPool, marker: &str) -> bool {
    let client = pool.get().await.expect("connection");
    client
        .query_opt(
            "SELECT 1 FROM cluster_instances WHERE instance_id = $1",
            &[&marker],
        )
        .await
        .expect("query")
        .is_some()
}

#[actix_web::test]
async fn a_lease_is_taken_over_only_once_expired_and_the_former_owner_can_no_longer_write() {
    let app = spawn_app().await;
    let key = LeaseKey::promo(7);
    assert_eq!(leases::claim(&app.pool, key, "a").await.unwrap(), Some(1));
    assert_eq!(leases::claim(&app.pool, key, "b").await.unwrap(), None);
    write_marker(&app.pool, &fence("a", 1), "written-by-a")
        .await
        .expect("the owner writes");
    assert!(has_marker(&app.pool, "written-by-a").await);

    expire(&app.pool).await;
    assert_eq!(leases::claim(&app.pool, key, "b").await.unwrap(), Some(2));
    let late = write_marker(&app.pool, &fence("a", 1), "late-write-of-a").await;
    assert!(
        matches!(
            late,
            Err(WriteFailure::NotCommitted(DbError::Violation(
                Violation::StaleLease
            )))
        ),
        "{late:?}"
    );
    assert!(!has_marker(&app.pool, "late-write-of-a").await);
    // The new owner writes; renewals tell each instance what it holds.
    write_marker(&app.pool, &fence("b", 2), "written-by-b")
        .await
        .expect("the new owner writes");
    assert!(leases::renew(&app.pool, "a", &[key])
        .await
        .unwrap()
        .held
        .is_empty());
    let renewal = leases::renew(&app.pool, "b", &[key]).await.unwrap();
    assert_eq!(renewal.held, vec![(key, 2)]);
    assert!(renewal.instances.contains(&"b".to_owned()));
}

#[actix_web::test]
async fn a_takeover_waits_for_a_write_past_the_fence_and_a_renewal_does_not() {
    let app = spawn_app().await;
    let key = LeaseKey::promo(7);
    assert_eq!(leases::claim(&app.pool, key, "a").await.unwrap(), Some(1));
    // A write of `a` that passed the fence and has not committed yet.
    let mut client = app.pool.get().await.expect("connection");
    let transaction = client.transaction().await.expect("transaction");
    transaction
        .execute("SELECT assert_lease('promo', 7, 'a', 1)", &[])
        .await
        .expect("the fence passes");
    let renewed = tokio::time::timeout(
        Duration::from_secs(2),
        leases::renew(&app.pool, "a", &[key]),
    )
    .await;
    assert!(
        renewed.is_ok(),
        "a renewal waited for the owner's own write"
    );
    expire(&app.pool).await;

    let pool = app.pool.clone();
    let takeover = tokio::spawn(async move { leases::claim(&pool, key, "b").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !takeover.is_finished(),
        "the takeover did not wait for the write"
    );
    transaction.commit().await.expect("the write commits");
    let taken = match takeover.await.expect("joined") {
        Ok(taken) => taken,
        // A machine so slow that the takeover's lock timeout (1 s) ran out
        // first: the next attempt, as the keeper would make, takes it.
        Err(_) => leases::claim(&app.pool, key, "b").await.expect("claimed"),
    };
    assert_eq!(taken, Some(2));
}
