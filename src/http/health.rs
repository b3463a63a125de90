//! Liveness and readiness: `/healthz` (the process answers) and `/readyz`
//! (PostgreSQL answers too, and in cluster mode NATS is connected).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::{resource, AppState};
use crate::db;

/// How long readiness waits for the database before saying no.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Registers `/healthz` and `/readyz`.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/healthz").route(web::get().to(report_health)))
        .service(resource("/readyz").route(web::get().to(report_readiness)));
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    security(()),
    responses(
        (status = 200, description = "The process is up", body = crate::http::openapi::schemas::StatusAnswer),
    )
)]
async fn report_health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness",
    security(()),
    responses(
        (status = 200, description = "PostgreSQL answers (and NATS, in cluster mode) and the engine has loaded", body = crate::http::openapi::schemas::StatusAnswer),
        crate::http::openapi::responses::Public,
    )
)]
async fn report_readiness(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let nats_down = state
        .engine
        .cluster()
        .is_some_and(|cluster| !cluster.is_connected());
    if nats_down {
        return Err(ApiError::Unavailable(
            "readiness probe failed: NATS is not connected".into(),
        ));
    }
    if db::is_reachable(&state.pool, READY_TIMEOUT).await {
        Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
    } else {
        Err(ApiError::Unavailable("readiness probe failed".into()))
    }
}
