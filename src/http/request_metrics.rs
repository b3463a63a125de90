//! `GET /metrics` and the middleware that counts and times every request
//! for it.
//!
//! The `route` label is the pattern of the resource that matched, with its
//! regex stripped (`/api/market/stores/{id}`), never the raw path: an
//! unmatched path is `unmatched`, so no client can grow the label set.
//! Labels are interned once as `&'static str` (the patterns, methods and
//! statuses are finite sets), so recording a request allocates nothing
//! beyond actix's own `match_pattern` string.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use super::resource;
use crate::telemetry::prometheus;

/// The `route` label of a request no resource matched.
pub const UNMATCHED: &str = "unmatched";

/// Registers `GET /metrics` (no credentials).
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(resource("/metrics").route(web::get().to(show_metrics)));
}

/// The Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String))
)]
pub async fn show_metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(prometheus::render())
}

/// Middleware: records the request's count and duration (to the response
/// head) under its method, route pattern and status.
pub async fn record_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(request.method());
    let answered = next.call(request).await;
    let (route, status) = match &answered {
        Ok(response) => (
            route_label(response.request().match_pattern()),
            status_label(response.status()),
        ),
        Err(error) => (
            UNMATCHED,
            status_label(error.as_response_error().status_code()),
        ),
    };
    prometheus::http_request(method, route, status, started.elapsed());
    answered
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The label of a matched pattern: `{id:\d+}` becomes `{id}`.
fn route_label(pattern: Option<String>) -> &'static str {
    static ROUTES: OnceLock<Interned> = OnceLock::new();
    match pattern {
        Some(pattern) => ROUTES
            .get_or_init(Interned::default)
            .get(&pattern, || strip_regexes(&pattern)),
        None => UNMATCHED,
    }
}

fn status_label(status: StatusCode) -> &'static str {
    static STATUSES: OnceLock<Interned> = OnceLock::new();
    STATUSES
        .get_or_init(Interned::default)
        .get(status.as_str(), || status.as_str().to_owned())
}

/// `/a/{id:\d+}/b` → `/a/{id}/b` (our patterns' regexes hold no braces).
pub fn strip_regexes(pattern: &str) -> String {
    let mut label = String::with_capacity(pattern.len());
    let (mut in_braces, mut in_regex) = (false, false);
    for character in pattern.chars() {
        match character {
            '{' if !in_braces => {
                in_braces = true;
                label.push('{');
            }
            ':' if in_braces => in_regex = true,
            '}' if in_braces => {
                (in_braces, in_regex) = (false, false);
                label.push('}');
            }
            _ if in_regex => {}
            other => label.push(other),
        }
    }
    label
}

/// A set of labels made `'static` once each. Only finite sets go in
/// (route patterns, status codes), so what is leaked is bounded.
#[derive(Default)]
struct Interned(RwLock<HashMap<String, &'static str>>);

impl Interned {
    fn get(&self, key: &str, make: impl FnOnce() -> String) -> &'static str {
        if let Some(label) = self.0.read().ok().and_then(|known| known.get(key).copied()) {
            return label;
        }
        let Ok(mut known) = self.0.write() else {
            return UNMATCHED;
        };
        known
            .entry(key.to_owned())
            .or_insert_with(|| Box::leak(make().into_boxed_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_drop_the_id_regexes() {
        assert_eq!(
            strip_regexes("/api/promotions/promo-reservations/{id:\\d+}/complete"),
            "/api/promotions/promo-reservations/{id}/complete"
        );
        assert_eq!(strip_regexes("/api/market/stores"), "/api/market/stores");
        assert_eq!(strip_regexes("/ws"), "/ws");
    }

    #[test]
    fn a_label_is_made_once_per_key() {
        let interned = Interned::default();
        let first = interned.get("/a/{id:\\d+}", || "/a/{id}".to_owned());
        let second = interned.get("/a/{id:\\d+}", || unreachable!());
        assert!(std::ptr::eq(first, second));
    }
}
