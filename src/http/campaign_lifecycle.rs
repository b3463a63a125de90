//! A campaign's lifecycle moves: `open/` (a draft starts taking entries),
//! `cancel/` (no entries, no draw) and `finish_campaign/` (the draw).
//!
//! Each move is one statement or one transaction under the campaign row's
//! lock (`db::campaigns`, `db::draws`), then a message so the registry starts
//! or stops the campaign's actor. The draw is fenced: a draw whose commit
//! went unheard is settled before anything is answered, and a repeat answers
//! the recorded winners in the same order.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::AdminCaller;
use super::body::JsonBody;
use super::error::ApiError;
use super::idempotency::{respond_once, CallerKey, OUTCOME_WAIT};
use super::{resource, AppState};
use crate::db;
use crate::db::campaign_lifecycle::Transition;
use crate::db::draws::Finish;
use crate::db::fence::WriteFailure;
use crate::domain::raffle::{Campaign, CampaignStatus, Winner};

/// How long one attempt at the draw may take before its outcome is in doubt.
const DRAW_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to settle a draw whose commit went unheard.
const SETTLE_PAUSE: Duration = Duration::from_millis(500);

/// Registers the lifecycle routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/api/raffles/campaigns/{id:\\d+}/open").route(web::post().to(open_campaign)),
        )
        .service(
            resource("/api/raffles/campaigns/{id:\\d+}/cancel")
                .route(web::post().to(cancel_campaign)),
        )
        .service(
            resource("/api/raffles/campaigns/{id:\\d+}/finish_campaign")
                .route(web::get().to(finish_campaign))
                .route(web::post().to(finish_campaign_once)),
        );
}

/// The 409 of a move the campaign's status does not allow.
fn closed(status: CampaignStatus, wanted: &str) -> ApiError {
    ApiError::Conflict {
        code: "campaign_closed",
        detail: format!("This campaign is {}: {wanted}", status.as_stored()),
    }
}

#[utoipa::path(
    post,
    path = "/api/raffles/campaigns/{id}/open/",
    tag = "raffles",
    summary = "Open a draft campaign",
    description = "Opens a draft: it takes entries from now on, and its `seed_commitment` is published.",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "Opened", body = crate::domain::raffle::Campaign),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`campaign_closed`: the campaign is not a draft", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn open_campaign(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let campaign_id = path.into_inner();
    match db::campaign_lifecycle::open_campaign(&state.pool, campaign_id, None).await? {
        Transition::NotFound => Err(ApiError::NotFound),
        Transition::Refused(status) => Err(closed(status, "only a draft can be opened.")),
        Transition::Done(campaign) => {
            tracing::info!(campaign_id, "campaign opened");
            state.engine.campaign_changed(&campaign);
            Ok(HttpResponse::Ok().json(campaign))
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/raffles/campaigns/{id}/cancel/",
    tag = "raffles",
    summary = "Cancel a campaign",
    description = "Cancels a draft or open campaign: entries are refused from now on, there is no draw and no email to entrants. Cancelling again is harmless.",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "Cancelled", body = crate::domain::raffle::Campaign),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`campaign_closed`: the campaign is finished", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn cancel_campaign(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let campaign_id = path.into_inner();
    match db::campaign_lifecycle::cancel_campaign(&state.pool, campaign_id).await? {
        Transition::NotFound => Err(ApiError::NotFound),
        Transition::Refused(status) => Err(closed(status, "its draw is done.")),
        Transition::Done(campaign) => {
            tracing::info!(campaign_id, "campaign cancelled");
            state.engine.campaign_closed(campaign_id);
            Ok(HttpResponse::Ok().json(campaign))
        }
    }
}

/// What `finish_campaign/` answers.
#[derive(Serialize, ToSchema)]
struct FinishBody {
    campaign: Campaign,
    /// The first winner (for clients that know only one).
    winner: Winner,
    /// Every winner, in draw order.
    winners: Vec<Winner>,
}

/// Finishes the campaign, learning the real outcome of a draw whose commit
/// went unheard: once its fence is settled the finish is asked again, which
/// answers the recorded winners if it committed (`true`: tell the engine, as
/// the draw's own answer was lost) or draws now if it did not. Past
/// [`OUTCOME_WAIT`] the answer is `outcome_unknown`.
async fn draw_for_sure(state: &AppState, campaign_id: i64) -> Result<(Finish, bool), ApiError> {
    let give_up = tokio::time::Instant::now() + OUTCOME_WAIT;
    let mut settled_late = false;
    loop {
        match db::draws::finish_campaign(&state.pool, campaign_id, DRAW_TIMEOUT).await {
            Ok(finish) => return Ok((finish, settled_late)),
            // Nothing of this attempt was written, but an earlier one may
            // have drawn: only a later answer may say which.
            Err(WriteFailure::NotCommitted(_)) if settled_late => {
                if tokio::time::Instant::now() + SETTLE_PAUSE >= give_up {
                    return Err(ApiError::OutcomeUnknown { retry_after: 2 });
                }
                tokio::time::sleep(SETTLE_PAUSE).await;
            }
            Err(WriteFailure::NotCommitted(error)) => return Err(error.into()),
            Err(WriteFailure::InDoubt { token, cause }) => {
                tracing::warn!(campaign_id, %cause, "draw in doubt; settling it");
                let settled =
                    db::fence::settle_before(&state.pool, token, SETTLE_PAUSE, give_up).await;
                if settled.is_none() {
                    return Err(ApiError::OutcomeUnknown { retry_after: 2 });
                }
                settled_late = true;
            }
        }
    }
}

/// `GET finish_campaign/`: draws the winners (or answers those drawn before).
#[utoipa::path(
    get,
    path = "/api/raffles/campaigns/{id}/finish_campaign/",
    tag = "raffles",
    summary = "Draw the winners and close the campaign",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "The campaign and its winners (the same, in the same order, on a repeat)", body = super::campaign_lifecycle::FinishBody),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`no_verified_subscribers`: nobody to draw (the campaign stays open); `campaign_closed`: a draft or cancelled campaign", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn finish_campaign(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    finish(state, path.into_inner()).await
}

/// `POST finish_campaign/`: the same, with `Idempotency-Key` and the deadline.
#[utoipa::path(
    post,
    path = "/api/raffles/campaigns/{id}/finish_campaign/",
    tag = "raffles",
    summary = "Draw the winners and close the campaign",
    params(("id" = i64, Path, description = "The object's integer id"), ("Idempotency-Key" = Option<String>, Header, description = "1..200 printable ASCII characters: a repeat within 24 hours answers the first answer again")),
    responses(
        (status = 200, description = "The campaign and its winners (the same, in the same order, on a repeat)", body = super::campaign_lifecycle::FinishBody),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`no_verified_subscribers`: nobody to draw (the campaign stays open); `campaign_closed`: a draft or cancelled campaign", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
        crate::http::openapi::responses::Idempotent,
    )
)]
async fn finish_campaign_once(
    AdminCaller(admin): AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let work = finish(state.clone(), path.into_inner());
    let caller = CallerKey::User(admin.id);
    respond_once(&state, &request, caller, body.bytes(), work).await
}

/// Draws the winners (or answers those drawn before).
async fn finish(state: web::Data<AppState>, campaign_id: i64) -> Result<HttpResponse, ApiError> {
    let (finish, settled_late) = draw_for_sure(&state, campaign_id).await?;
    match finish {
        Finish::NotFound => Err(ApiError::NotFound),
        Finish::NotOpen(status) => Err(closed(status, "there is no draw.")),
        Finish::NoVerified => Err(ApiError::Conflict {
            code: "no_verified_subscribers",
            detail: "No subscriber of this campaign has verified their address yet; \
                     the campaign stays open."
                .into(),
        }),
        Finish::SeedCommitted => Err(ApiError::RetryLater {
            status: actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            detail: "This campaign had no committed seed: one is committed now (see draw/); \
                     retry to draw on it."
                .into(),
            retry_after: 1,
        }),
        Finish::Finished {
            campaign,
            drawn_now,
        } => {
            if drawn_now || settled_late {
                let winners = campaign.winners.len();
                tracing::info!(campaign_id, winners, "raffle drawn");
                state.engine.campaign_closed(campaign_id);
                state.engine.wake_mailer();
            }
            let winners = campaign.winners.clone();
            let winner = winners
                .first()
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a draw without winners")))?;
            Ok(HttpResponse::Ok().json(FinishBody {
                campaign: *campaign,
                winner,
                winners,
            }))
        }
    }
}
