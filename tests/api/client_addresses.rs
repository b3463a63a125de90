//! Which address a request is counted under: the TCP peer, or the client a
//! trusted proxy names in `X-Forwarded-For` (`TRUSTED_PROXIES`), for the
//! sign-up limit and the sign-in throttle.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};

/// A client whose requests leave from `address` (any 127.x address is local).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn create_campaign(app: &TestApp) -> i64 {
    let body = json!({
        "name": "Proxied raffle", "admin_email": "marketing@example.com",
        "email_subject": "Confirm your entry", "email_template": "Confirm: {{verify_url}}",
    });
    let answer = app.post("/api/raffles/campaigns/", &app.admin, body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.body["id"].as_i64().unwrap()
}

/// One sign-up sent by `client` with `forwarded_for` (if any): its status.
async fn sign_up(
    app: &TestApp,
    client: &reqwest::Client,
    campaign_id: i64,
    email: &str,
    forwarded_for: Option<&str>,
) -> StatusCode {
    let url = format!(
        "{}/api/raffles/campaigns/{campaign_id}/add_subscriber/",
        app.address
    );
    let mut request = client.post(url).json(&json!({"email": email}));
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    request.send().await.unwrap().status()
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_sign_up_limit() {
    let app = spawn_app_with(|config| {
        config.rate_limit_subscribe_per_minute = 2;
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let campaign_id = create_campaign(&app).await;
    let proxy = client_from("127.0.0.1");
    let first = Some("203.0.113.1");
    for n in 0..2 {
        let email = format!("a{n}@example.com");
        let status = sign_up(&app, &proxy, campaign_id, &email, first).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let status = sign_up(&app, &proxy, campaign_id, "a2@example.com", first).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A forged address left of the proxy's entry does not help.
    let forged = Some("198.51.100.77, 203.0.113.1");
    let status = sign_up(&app, &proxy, campaign_id, "a3@example.com", forged).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is not held back.
    let second = Some("203.0.113.2");
    let status = sign_up(&app, &proxy, campaign_id, "b0@example.com", second).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.count_rows("subscribers").await, 3);
}

#[actix_web::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(|config| {
        config.rate_limit_subscribe_per_minute = 2;
        // Trusted: another loopback address, not the one the client uses.
        config.trusted_proxies = vec!["127.0.0.9/32".parse().unwrap()];
    })
    .await;
    let campaign_id = create_campaign(&app).await;
    let direct = client_from("127.0.0.2");
    for n in 0..2 {
        let email = format!("c{n}@example.com");
        let forwarded_for = format!("203.0.113.{n}");
        let status = sign_up(&app, &direct, campaign_id, &email, Some(&forwarded_for)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let status = sign_up(
        &app,
        &direct,
        campaign_id,
        "c2@example.com",
        Some("203.0.113.99"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a client cannot choose the address it is counted under"
    );
    assert_eq!(app.count_rows("subscribers").await, 2);
}

/// `POST /api/auth/token/` through the proxy for `forwarded_for`: status and body.
async fn sign_in(app: &TestApp, forwarded_for: &str, username: &str) -> (StatusCode, Value) {
    let response = client_from("127.0.0.1")
        .post(format!("{}/api/auth/token/", app.address))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": username, "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[actix_web::test]
async fn failed_sign_ins_are_throttled_per_forwarded_client() {
    let app = spawn_app_with(|config| {
        config.login_failures_per_minute = 3;
        config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    // Failures for many usernames from one client behind the proxy.
    let mut refused = None;
    for attempt in 0..12 {
        let (status, body) = sign_in(&app, "203.0.113.5", &format!("nobody{attempt}")).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(attempt);
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    assert!(refused.is_some(), "the client was never throttled");
    // A different client behind the same proxy signs in (and fails) normally.
    let (status, body) = sign_in(&app, "203.0.113.6", "someone-else").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
