//! `/api/promotions/promo-reservations/`: the one-minute hold.
//!
//! Reserve, complete and cancel are one call each on the [`Engine`]
//! (the same calls the WebSocket edge makes); the 201 or 200 is sent once the
//! change is committed. Listing and reading a reservation read PostgreSQL.
//!
//! [`Engine`]: crate::engine::Engine

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{id, present, Form, Presence};
use super::idempotency::{respond_once, CallerKey};
use super::pagination::PageRequest;
use super::{resource, AppState};
use crate::db::{self, Listing};
use crate::domain::reservation::{Reservation, ReservationStatus};

/// Registers the reservation routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/api/promotions/promo-reservations")
                .route(web::get().to(list_reservations))
                .route(web::post().to(reserve_unit)),
        )
        .service(
            resource("/api/promotions/promo-reservations/{id:\\d+}")
                .route(web::get().to(get_reservation)),
        )
        .service(
            resource("/api/promotions/promo-reservations/{id:\\d+}/complete")
                .route(web::post().to(complete_purchase)),
        )
        .service(
            resource("/api/promotions/promo-reservations/{id:\\d+}/cancel")
                .route(web::post().to(cancel_reservation)),
        );
}

#[tracing::instrument(skip_all, fields(user_id = account.id))]
#[utoipa::path(
    post,
    path = "/api/promotions/promo-reservations/",
    tag = "promotions",
    summary = "Hold one unit for the caller",
    params(("Idempotency-Key" = Option<String>, Header, description = "1..200 printable ASCII characters: a repeat within 24 hours answers the first answer again")),
    request_body = crate::http::openapi::schemas::ReserveRequest,
    responses(
        (status = 201, description = "Held (durable)", body = crate::domain::reservation::Reservation),
        (status = 400, description = "`bad_json`; `validation_error`; `location_unknown`: the caller has no location", body = crate::http::openapi::schemas::ErrorBody),
        (status = 403, description = "`not_in_segment`; `too_far`", body = crate::http::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such promo", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`promo_not_running`; `already_reserved`; `all_units_held` (`retry_after`, `Retry-After`); `sold_out`", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::RawJsonInput,
        crate::http::openapi::responses::Idempotent,
    )
)]
async fn reserve_unit(
    Caller(account): Caller,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let mut form = Form::new(body.parse()?)?;
    let promo_id = form.field("promo_id", Presence::Required, id);
    form.finish()?;
    let promo_id = present(promo_id, "promo_id")?;
    let caller = CallerKey::User(account.id);
    let work = {
        let state = state.clone();
        async move {
            let reservation = state.engine.reserve(account.id, promo_id, None).await?;
            Ok(HttpResponse::Created().json(reservation))
        }
    };
    respond_once(&state, &request, caller, body.bytes(), work).await
}

#[utoipa::path(
    post,
    path = "/api/promotions/promo-reservations/{id}/complete/",
    tag = "promotions",
    summary = "Complete the purchase of a held unit",
    params(("id" = i64, Path, description = "The object's integer id"), ("Idempotency-Key" = Option<String>, Header, description = "1..200 printable ASCII characters: a repeat within 24 hours answers the first answer again")),
    responses(
        (status = 200, description = "Completed (durable); a repeat answers the same", body = super::reservations::ReleaseAnswer),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`reservation_expired`; `reservation_cancelled`", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::JsonInput,
        crate::http::openapi::responses::Idempotent,
    )
)]
async fn complete_purchase(
    caller: Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    release(caller, path.into_inner(), state, request, body, true).await
}

#[utoipa::path(
    post,
    path = "/api/promotions/promo-reservations/{id}/cancel/",
    tag = "promotions",
    summary = "Release a held unit",
    params(("id" = i64, Path, description = "The object's integer id"), ("Idempotency-Key" = Option<String>, Header, description = "1..200 printable ASCII characters: a repeat within 24 hours answers the first answer again")),
    responses(
        (status = 200, description = "Cancelled; a repeat answers the same", body = super::reservations::ReleaseAnswer),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`already_completed`; `reservation_expired`", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::JsonInput,
        crate::http::openapi::responses::Idempotent,
    )
)]
async fn cancel_reservation(
    caller: Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    release(caller, path.into_inner(), state, request, body, false).await
}

/// Completes (`sell`) or cancels reservation `id` of the caller, through
/// the engine, once per `Idempotency-Key`.
#[tracing::instrument(skip_all, fields(user_id = account.id, sell))]
async fn release(
    Caller(account): Caller,
    id: i64,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
    sell: bool,
) -> Result<HttpResponse, ApiError> {
    let user_id = account.id;
    let work = {
        let state = state.clone();
        async move {
            let reservation = match sell {
                true => state.engine.complete(user_id, id).await?,
                false => state.engine.cancel(user_id, id).await?,
            };
            Ok(released(reservation))
        }
    };
    let caller = CallerKey::User(user_id);
    respond_once(&state, &request, caller, body.bytes(), work).await
}

/// The 200 of a complete or cancel.
fn released(reservation: Reservation) -> HttpResponse {
    HttpResponse::Ok().json(ReleaseAnswer {
        status: reservation.status,
        reservation,
    })
}

/// The answer to a complete or cancel: the new status and the reservation.
#[derive(Serialize, ToSchema)]
struct ReleaseAnswer {
    status: ReservationStatus,
    reservation: Reservation,
}

#[utoipa::path(
    get,
    path = "/api/promotions/promo-reservations/",
    tag = "promotions",
    summary = "The caller's reservations, newest first",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::domain::reservation::Reservation>),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_reservations(
    Caller(account): Caller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing =
        db::reservations::list_reservations(&state.pool, account.id, page.window()).await?;
    let promo_ids = listing.items.iter().map(|record| record.promo_id);
    let promos = db::promos::find_promos_by_id(&state.pool, promo_ids).await?;
    let items = listing
        .items
        .iter()
        .filter_map(|record| {
            Some(Reservation::new(
                record,
                promos.get(&record.promo_id)?.clone(),
            ))
        })
        .collect();
    page.respond(
        &request,
        Listing {
            total: listing.total,
            items,
        },
    )
}

#[utoipa::path(
    get,
    path = "/api/promotions/promo-reservations/{id}/",
    tag = "promotions",
    summary = "Read one of the caller's reservations",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "OK", body = crate::domain::reservation::Reservation),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
    )
)]
async fn get_reservation(
    Caller(account): Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let record = db::reservations::find_reservation(&state.pool, path.into_inner(), account.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(state.engine.with_promo(&record).await?))
}
