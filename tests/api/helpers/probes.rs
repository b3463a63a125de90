//! What a test reads off a running instance without knowing its insides:
//! `/readyz`, `running/`, and one sample of `/metrics`. None of them
//! panics when the instance is gone (a test may have killed it): they
//! answer "not ready", "not listed", "not exposed".

use std::time::Duration;

use reqwest::StatusCode;

use super::app::TestApp;

/// `/readyz` answers 200 (false on any other answer or none).
pub async fn is_ready(app: &TestApp) -> bool {
    readiness_of(app).await == Some(StatusCode::OK)
}

/// `/readyz`'s status, or `None` when nothing answers.
pub async fn readiness_of(app: &TestApp) -> Option<StatusCode> {
    let response = app
        .http
        .get(format!("{}/readyz", app.address))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    response.ok().map(|response| response.status())
}

/// The promo is listed by the instance's `running/`.
pub async fn lists_running(app: &TestApp, promo_id: i64) -> bool {
    let answer = app
        .try_call(
            reqwest::Method::GET,
            "/api/promotions/flash-promos/running/?page_size=100",
            &app.admin,
            None,
        )
        .await;
    answer.is_ok_and(|answer| {
        answer.body["results"]
            .as_array()
            .is_some_and(|promos| promos.iter().any(|promo| promo["id"] == promo_id))
    })
}

/// The value of the sample `series` (a metric name with its labels as
/// exposed, e.g. `promo_engine_forwarded_total{outcome="answered"}`) on the
/// instance's `/metrics`; `None` when it is not exposed (or nothing answers).
pub async fn metric_value(app: &TestApp, series: &str) -> Option<f64> {
    let response = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .ok()?;
    let text = response.text().await.ok()?;
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}
