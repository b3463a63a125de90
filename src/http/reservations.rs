//! `/api/promotions/promo-reservations/`: the one-minute hold.
//!
//! Reserving goes to the promo's actor through the registry; the 201 is sent
//! once the hold is committed. Completing and cancelling read the shopper's
//! own reservation first (another shopper's is 404), answer repeats from the
//! stored state (idempotent), and send live holds to the actor.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::auth::Caller;
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{id, present, Form, Presence};
use super::idempotency::{respond_once, within_outcome_wait, CallerKey};
use super::pagination::PageRequest;
use super::promos::unavailable;
use super::{resource, AppState};
use crate::actors::audience::GetMember;
use crate::actors::promo::{PromoRefusal, Reserve, WsOrigin};
use crate::actors::promo_registry::{ReleaseUnit, ReserveUnit, RoutedRefusal};
use crate::db::{self, Listing};
use crate::domain::eligibility::Ineligible;
use crate::domain::promo::PromoStatus;
use crate::domain::reservation::{Reservation, ReservationRecord, ReservationStatus};
use crate::domain::stock::{ReleaseError, ReserveError};

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
            let reservation = reserve_for(&state, account.id, promo_id, None).await?;
            Ok(HttpResponse::Created().json(reservation))
        }
    };
    respond_once(&state, &request, caller, body.bytes(), work).await
}

/// Holds a unit of `promo_id` for `user_id` (REST and WebSocket alike): the
/// checks of API.md's table, in its order; answered once the hold is durable.
/// `origin` names the WebSocket request this answers (its session gets the
/// `reservation.held` frame with the `request_id`).
pub async fn reserve_for(
    state: &AppState,
    user_id: i64,
    promo_id: i64,
    origin: Option<WsOrigin>,
) -> Result<Reservation, ApiError> {
    within_outcome_wait(ask_to_reserve(state, user_id, promo_id, origin)).await
}

async fn ask_to_reserve(
    state: &AppState,
    user_id: i64,
    promo_id: i64,
    origin: Option<WsOrigin>,
) -> Result<Reservation, ApiError> {
    let member = state
        .engine
        .audience
        .send(GetMember { user_id })
        .await
        .map_err(unavailable)?;
    let routed = state
        .engine
        .registry
        .send(ReserveUnit {
            promo_id,
            reserve: Reserve {
                user_id,
                member,
                origin,
            },
        })
        .await
        .map_err(unavailable)?;
    match routed {
        Ok(reservation) => Ok(reservation),
        Err(RoutedRefusal::Refused(refusal)) => Err(refusal_error(refusal)),
        Err(RoutedRefusal::NoActor) => Err(without_actor(state, promo_id).await),
    }
}

/// Why a promo with no actor cannot be reserved.
async fn without_actor(state: &AppState, promo_id: i64) -> ApiError {
    match db::promos::find_promo(&state.pool, promo_id).await {
        Err(error) => error.into(),
        Ok(None) => ApiError::NotFound,
        // Running but its actor is (re)starting: a moment's wait fixes it.
        Ok(Some(promo)) if matches!(promo.status, PromoStatus::Running | PromoStatus::SoldOut) => {
            ApiError::EngineUnavailable("the promo's actor is starting".into())
        }
        Ok(Some(_)) => refusal_error(PromoRefusal::NotRunning),
    }
}

async fn complete_purchase(
    caller: Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let key = CallerKey::User(caller.0.id);
    let work = release(caller, path.into_inner(), state.clone(), true);
    respond_once(&state, &request, key, body.bytes(), work).await
}

async fn cancel_reservation(
    caller: Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let key = CallerKey::User(caller.0.id);
    let work = release(caller, path.into_inner(), state.clone(), false);
    respond_once(&state, &request, key, body.bytes(), work).await
}

/// Completes (`sell`) or cancels a reservation of the caller's. A live hold
/// goes to its actor, which answers once the release (its own, or a repeat's
/// that got there first) is durable; anything else is answered from the
/// stored state, which makes repeats idempotent.
async fn release(
    Caller(account): Caller,
    id: i64,
    state: web::Data<AppState>,
    sell: bool,
) -> Result<HttpResponse, ApiError> {
    within_outcome_wait(release_for(account.id, id, &state, sell)).await
}

async fn release_for(
    user_id: i64,
    id: i64,
    state: &AppState,
    sell: bool,
) -> Result<HttpResponse, ApiError> {
    let record = db::reservations::find_reservation(&state.pool, id, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if record.status == ReservationStatus::Held {
        let routed = state
            .engine
            .registry
            .send(ReleaseUnit {
                promo_id: record.promo_id,
                reservation_id: record.reservation_id,
                sell,
            })
            .await
            .map_err(unavailable)?;
        match routed {
            Ok(reservation) => return release_outcome(reservation, sell),
            Err(RoutedRefusal::Refused(PromoRefusal::Release(ReleaseError::NotHeld)))
            | Err(RoutedRefusal::NoActor) => {}
            Err(RoutedRefusal::Refused(PromoRefusal::Release(ReleaseError::Expired(_)))) => {
                return Err(conflict(
                    "reservation_expired",
                    "The hold expired before this request.",
                ));
            }
            Err(RoutedRefusal::Refused(refusal)) => return Err(refusal_error(refusal)),
        }
    }
    let record = db::reservations::find_reservation_by_uuid(&state.pool, record.reservation_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if record.status == ReservationStatus::Held {
        // Held in the database, yet its actor does not hold it: the actor is
        // (re)loading the promo's stock.
        return Err(ApiError::EngineUnavailable(
            "the reservation's promo is reloading".into(),
        ));
    }
    release_outcome(with_promo(state, &record).await?, sell)
}

/// The answer to a complete (`sell`) or cancel of `reservation` as it stands.
fn release_outcome(reservation: Reservation, sell: bool) -> Result<HttpResponse, ApiError> {
    let done = if sell {
        ReservationStatus::Completed
    } else {
        ReservationStatus::Cancelled
    };
    match (reservation.status, sell) {
        (status, _) if status == done => Ok(HttpResponse::Ok().json(ReleaseAnswer {
            status: done,
            reservation,
        })),
        (ReservationStatus::Expired, _) => {
            Err(conflict("reservation_expired", "The hold expired."))
        }
        (ReservationStatus::Cancelled, true) => Err(conflict(
            "reservation_cancelled",
            "The reservation was cancelled.",
        )),
        (ReservationStatus::Completed, false) => Err(conflict(
            "already_completed",
            "The purchase is already complete.",
        )),
        (_, _) => Err(ApiError::EngineUnavailable(
            "the reservation is changing".into(),
        )),
    }
}

/// The answer to a complete or cancel: the new status and the reservation.
#[derive(Serialize)]
struct ReleaseAnswer {
    status: ReservationStatus,
    reservation: Reservation,
}

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

async fn get_reservation(
    Caller(account): Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let record = db::reservations::find_reservation(&state.pool, path.into_inner(), account.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(with_promo(&state, &record).await?))
}

async fn with_promo(state: &AppState, record: &ReservationRecord) -> Result<Reservation, ApiError> {
    let promo = db::promos::find_promo(&state.pool, record.promo_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Reservation::new(record, promo))
}

fn conflict(code: &'static str, detail: &str) -> ApiError {
    ApiError::Conflict {
        code,
        detail: detail.into(),
    }
}

/// Maps an actor's refusal to API.md's status and code.
fn refusal_error(refusal: PromoRefusal) -> ApiError {
    match refusal {
        PromoRefusal::NotRunning => conflict(
            "promo_not_running",
            "The promo is inactive, not started or over.",
        ),
        PromoRefusal::Ineligible(Ineligible::NotInSegment) => ApiError::Forbidden {
            code: "not_in_segment",
            detail: Ineligible::NotInSegment.to_string(),
        },
        PromoRefusal::Ineligible(Ineligible::LocationUnknown) => ApiError::Unprocessable {
            code: "location_unknown",
            detail: Ineligible::LocationUnknown.to_string(),
        },
        PromoRefusal::Ineligible(Ineligible::TooFar) => ApiError::Forbidden {
            code: "too_far",
            detail: Ineligible::TooFar.to_string(),
        },
        PromoRefusal::Stock(ReserveError::AlreadyReserved) => {
            conflict("already_reserved", "You already hold a unit of this promo.")
        }
        PromoRefusal::Stock(ReserveError::AllUnitsHeld { retry_after_secs }) => {
            ApiError::RetryLater {
                status: StatusCode::CONFLICT,
                code: "all_units_held",
                detail: "Every unit is held by other shoppers; one may come free.".into(),
                retry_after: retry_after_secs,
            }
        }
        PromoRefusal::Stock(ReserveError::SoldOut) => conflict("sold_out", "Every unit is sold."),
        PromoRefusal::Release(ReleaseError::Expired(_)) => {
            conflict("reservation_expired", "The hold expired.")
        }
        PromoRefusal::Unavailable => {
            ApiError::Unavailable("the promo could not record the decision".into())
        }
        PromoRefusal::Release(ReleaseError::NotHeld) => {
            ApiError::EngineUnavailable("the hold is not in its promo's memory".into())
        }
        PromoRefusal::Refused => {
            ApiError::EngineUnavailable("the database refused the decision".into())
        }
        PromoRefusal::Settling => ApiError::Overloaded {
            detail: "This promo is confirming an earlier write whose answer was lost; \
                     nothing was changed. Retry in a moment.",
        },
        PromoRefusal::OutcomeUnknown => ApiError::OutcomeUnknown { retry_after: 2 },
    }
}
