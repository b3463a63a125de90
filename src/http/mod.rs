//! The HTTP surface: shared state, the route table and the middleware.
//!
//! Paths are declared without their trailing slash and `NormalizePath` trims
//! it from requests, so `/api/market/stores/` and `/api/market/stores` reach
//! the same handler with no redirect (a redirect would drop a POST body).
//! Every unknown route or method answers the JSON error shape.

pub mod api_docs;
pub mod auth;
pub mod body;
pub mod campaign_form;
pub mod campaign_lifecycle;
pub mod campaigns;
pub mod client_address;
pub mod clients;
pub mod credential_cache;
pub mod draw_reads;
pub mod draws;
pub mod error;
pub mod form;
pub mod health;
pub mod idempotency;
pub mod login_throttle;
pub mod notifications;
pub mod openapi;
pub mod outbox;
pub mod pagination;
pub mod password_gate;
pub mod products;
pub mod promos;
pub mod rate_limit;
pub mod request_metrics;
pub mod reservations;
pub mod segments;
pub mod static_pages;
pub mod stores;
pub mod subscriptions;
pub mod tokens;
pub mod ws;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use actix_web::middleware::{from_fn, NormalizePath, TrailingSlash};
use actix_web::{web, App, HttpResponse};

use crate::config::Config;
use crate::db::DbPool;
use crate::engine::Engine;
use credential_cache::CredentialCache;
use error::ApiError;

/// What every handler shares.
pub struct AppState {
    /// The database pool.
    pub pool: DbPool,
    /// The one way in to the realtime engine.
    pub engine: Engine,
    /// The process configuration.
    pub config: Arc<Config>,
    /// Recently verified credentials (shared with the cluster listener,
    /// which forgets those of accounts changed on other instances).
    pub credentials: Arc<CredentialCache>,
    /// A real argon2 hash of a random password: an unknown username is checked
    /// against it so that it costs as much time as a known one.
    pub decoy_password_hash: String,
    /// `add_subscriber` requests per client address; `None` when unlimited.
    pub subscribe_limit: Option<rate_limit::ClientRateLimit>,
    /// The one bounded queue every password check goes through.
    pub password_gate: password_gate::PasswordGate,
    /// Failed sign-ins per username and address; `None` when unlimited.
    pub login_throttle: Option<login_throttle::LoginThrottle>,
    /// The cap on draw files built at once, and the finished digests seen.
    pub draw_reads: draw_reads::DrawReads,
}

/// Registers every route and the app-wide extractor settings.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|error, _| ApiError::field("query", error.to_string()).into()),
        )
        .configure(health::routes)
        .configure(request_metrics::routes)
        .configure(openapi::routes)
        .configure(api_docs::routes)
        .configure(tokens::routes)
        .configure(stores::routes)
        .configure(products::routes)
        .configure(segments::routes)
        .configure(clients::routes)
        .configure(notifications::routes)
        .configure(promos::routes)
        .configure(reservations::routes)
        .configure(campaigns::routes)
        .configure(subscriptions::routes)
        .configure(outbox::routes)
        .configure(ws::routes)
        .configure(static_pages::routes);
}

/// Builds the application for one HTTP worker.
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .wrap(NormalizePath::new(TrailingSlash::Trim))
        // Outermost, so it times everything and sees the normalised path.
        .wrap(from_fn(request_metrics::record_request))
        .configure(configure)
        .default_service(web::to(route_not_found))
}

/// A resource whose unsupported methods answer 405 in the JSON error shape.
/// Its pattern is remembered for [`registered_patterns`].
pub fn resource(path: &'static str) -> actix_web::Resource {
    if let Ok(mut patterns) = PATTERNS.lock() {
        patterns.insert(path);
    }
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Every pattern registered through [`resource`] (by any app built in this
/// process): what the route table really serves, for the test that holds
/// the OpenAPI document to it.
pub fn registered_patterns() -> Vec<&'static str> {
    PATTERNS
        .lock()
        .map(|patterns| patterns.iter().copied().collect())
        .unwrap_or_default()
}

static PATTERNS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
