//! The proxy against the real PostgreSQL (127.0.0.1:5432, or the server of
//! `TEST_DATABASE_URL`): a tokio-postgres client through the proxy, and a
//! second, direct connection to see what really committed.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use super::{ChaosConfig, CommitFault, FaultProxy};

fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn server_address() -> SocketAddr {
    let config: tokio_postgres::Config = server_url().parse().expect("TEST_DATABASE_URL");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A database of its own with a table `t (id int primary key)`, dropped at the end.
struct Scratch {
    name: String,
    direct: Client,
}

impl Scratch {
    async fn new() -> Scratch {
        let name = format!("promo_proxy_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&server_url()).await.expect("server");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("database created");
        let direct = connect(&Scratch::url_at(&name, server_address().port()))
            .await
            .expect("direct connection");
        direct
            .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
            .await
            .expect("table");
        Scratch { name, direct }
    }

    fn url_at(name: &str, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{name}")
    }

    async fn through(&self, proxy: &FaultProxy) -> Client {
        connect(&Scratch::url_at(&self.name, proxy.port()))
            .await
            .expect("connection through the proxy")
    }

    async fn committed(&self, id: i32) -> bool {
        let rows = self
            .direct
            .query("SELECT 1 FROM t WHERE id = $1", &[&id])
            .await
            .expect("direct read");
        !rows.is_empty()
    }

    async fn drop_database(self) {
        drop(self.direct);
        let admin = connect(&server_url()).await.expect("server");
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        admin.batch_execute(&sql).await.expect("database dropped");
    }
}

async fn proxy() -> FaultProxy {
    FaultProxy::start_to(server_address()).await.expect("proxy")
}

/// Inserts `id` in a transaction and commits it through `client`.
async fn insert_and_commit(client: &mut Client, id: i32) -> Result<(), tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .execute("INSERT INTO t VALUES ($1)", &[&id])
        .await?;
    transaction.commit().await
}

async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = Instant::now() + deadline;
    while !check().await {
        if Instant::now() >= give_up {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test]
async fn healthy_traffic_passes_through_and_commits_are_counted() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let mut client = scratch.through(&proxy).await;
    insert_and_commit(&mut client, 1).await.expect("commit");
    let big = "x".repeat(100_000);
    let echoed: String = client
        .query_one("SELECT $1::text", &[&big])
        .await
        .expect("a big round trip")
        .get(0);
    assert_eq!(echoed, big);
    assert!(scratch.committed(1).await);
    let stats = proxy.stats();
    assert_eq!((stats.commits_seen, stats.faults_applied), (1, 0));
    assert_eq!(stats.links_open, 1);
    scratch.drop_database().await;
}

#[tokio::test]
async fn a_lost_commit_reply_keeps_the_client_waiting_while_the_row_commits() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let mut client = scratch.through(&proxy).await;
    proxy.on_next_commits(1, CommitFault::LoseReply);
    let waited = tokio::time::timeout(Duration::from_secs(1), insert_and_commit(&mut client, 7));
    assert!(waited.await.is_err(), "the client heard an answer");
    assert!(scratch.committed(7).await, "the commit reached the server");
    assert_eq!(proxy.stats().faults_applied, 1);
    assert_eq!(proxy.stats().links_open, 1, "the link stays open");
    scratch.drop_database().await;
}

#[tokio::test]
async fn a_commit_reset_before_it_is_forwarded_does_not_commit() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let mut client = scratch.through(&proxy).await;
    proxy.on_next_commits(1, CommitFault::ResetBefore);
    let outcome = insert_and_commit(&mut client, 8).await;
    assert!(outcome.is_err(), "the commit cannot have succeeded");
    assert!(!scratch.committed(8).await);
    let stats = proxy.stats();
    assert_eq!((stats.faults_applied, stats.links_reset), (1, 1));
    scratch.drop_database().await;
}

#[tokio::test]
async fn a_commit_reset_after_it_is_forwarded_commits_but_the_client_sees_an_error() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let mut client = scratch.through(&proxy).await;
    proxy.on_next_commits(1, CommitFault::ResetAfter);
    let outcome = insert_and_commit(&mut client, 9).await;
    assert!(outcome.is_err(), "the client heard the answer");
    assert!(scratch.committed(9).await);
    assert_eq!(proxy.stats().links_reset, 1);
    scratch.drop_database().await;
}

#[tokio::test]
async fn a_delayed_commit_lands_only_after_its_delay() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let mut client = scratch.through(&proxy).await;
    proxy.on_next_commits(1, CommitFault::Delay(Duration::from_millis(600)));
    let started = Instant::now();
    let commit = tokio::spawn(async move { insert_and_commit(&mut client, 10).await });
    assert!(
        wait_until(Duration::from_secs(5), || async {
            proxy.stats().commits_seen == 1
        })
        .await
    );
    assert!(!scratch.committed(10).await, "the commit was held");
    commit.await.expect("task").expect("the commit succeeds");
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(scratch.committed(10).await);
    scratch.drop_database().await;
}

#[tokio::test]
async fn only_the_requested_number_of_commits_is_faulted() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    proxy.on_next_commits(2, CommitFault::ResetBefore);
    for id in 0..3 {
        let mut client = scratch.through(&proxy).await;
        let _ = insert_and_commit(&mut client, id).await;
    }
    let committed = [
        scratch.committed(0).await,
        scratch.committed(1).await,
        scratch.committed(2).await,
    ];
    assert_eq!(committed, [false, false, true]);
    assert_eq!(proxy.stats().commits_seen, 3);
    scratch.drop_database().await;
}

#[tokio::test]
async fn a_cut_breaks_open_links_and_refuses_new_ones_until_restored() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let client = scratch.through(&proxy).await;
    proxy.cut();
    assert!(client.simple_query("SELECT 1").await.is_err());
    let url = Scratch::url_at(&scratch.name, proxy.port());
    assert!(connect(&url).await.is_err(), "a new link got through a cut");
    proxy.restore();
    let client = connect(&url).await.expect("a link after restore");
    assert!(client.simple_query("SELECT 1").await.is_ok());
    assert!(proxy.stats().links_refused >= 1);
    scratch.drop_database().await;
}

#[tokio::test]
async fn reset_all_breaks_open_links_but_accepts_new_ones() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let client = scratch.through(&proxy).await;
    proxy.reset_all();
    assert!(client.simple_query("SELECT 1").await.is_err());
    let client = scratch.through(&proxy).await;
    assert!(client.simple_query("SELECT 1").await.is_ok());
    assert_eq!(proxy.stats().links_reset, 1);
    scratch.drop_database().await;
}

#[tokio::test]
async fn a_pause_holds_bytes_without_dropping_them_until_resumed() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let client = scratch.through(&proxy).await;
    proxy.pause();
    let query = client.query_one("SELECT 41 + 1", &[]);
    tokio::pin!(query);
    let held = tokio::time::timeout(Duration::from_millis(300), &mut query).await;
    assert!(held.is_err(), "an answer passed a pause");
    proxy.resume();
    let answer: i32 = query.await.expect("the held query completes").get(0);
    assert_eq!(answer, 42);
    scratch.drop_database().await;
}

#[tokio::test]
async fn a_delay_slows_both_directions_of_every_round_trip() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let client = scratch.through(&proxy).await;
    proxy.delay(Duration::from_millis(150));
    let started = Instant::now();
    client.simple_query("SELECT 1").await.expect("query");
    assert!(started.elapsed() >= Duration::from_millis(300));
    proxy.delay(Duration::ZERO);
    scratch.drop_database().await;
}

#[tokio::test]
async fn chaos_resets_links_and_stops_when_calmed() {
    let scratch = Scratch::new().await;
    let proxy = proxy().await;
    let config = ChaosConfig {
        reset_per_second: 20.0,
        ..ChaosConfig::default()
    };
    let client = scratch.through(&proxy).await;
    proxy.chaos(7, config);
    let reset = wait_until(Duration::from_secs(5), || async {
        proxy.stats().links_reset >= 1
    });
    assert!(reset.await, "chaos never reset the link");
    assert!(client.simple_query("SELECT 1").await.is_err());
    proxy.calm();
    let client = scratch.through(&proxy).await;
    assert!(client.simple_query("SELECT 1").await.is_ok());
    scratch.drop_database().await;
}
