//! `/api/raffles/campaigns/`: the admin's campaign CRUD, a campaign's
//! subscribers, and `finish_campaign/` (the draw).
//!
//! Creating a campaign starts its `CampaignActor`; finishing or deleting one
//! closes it. Edits need no message: each batch of entries reads the
//! campaign's subject and template inside its own transaction.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::AdminCaller;
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{checked, text, Form, Presence};
use super::idempotency::{respond_once, CallerKey, OUTCOME_WAIT};
use super::pagination::PageRequest;
use super::{resource, AppState};
use crate::db;
use crate::db::campaigns::{CampaignFields, Finish};
use crate::db::fence::WriteFailure;
use crate::domain::raffle::{parse_description, parse_subject, parse_template, Campaign, Winner};
use crate::domain::{EmailAddress, Name};

/// Registers the campaign routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/api/raffles/campaigns")
                .route(web::get().to(list_campaigns))
                .route(web::post().to(create_campaign)),
        )
        .service(
            resource("/api/raffles/campaigns/{id:\\d+}")
                .route(web::get().to(get_campaign))
                .route(web::put().to(replace_campaign))
                .route(web::patch().to(update_campaign))
                .route(web::delete().to(delete_campaign)),
        )
        .service(
            resource("/api/raffles/campaigns/{id:\\d+}/subscribers")
                .route(web::get().to(list_subscribers)),
        )
        .service(
            resource("/api/raffles/campaigns/{id:\\d+}/finish_campaign")
                .route(web::get().to(finish_campaign))
                .route(web::post().to(finish_campaign_once)),
        );
}

#[utoipa::path(
    get,
    path = "/api/raffles/campaigns/",
    tag = "raffles",
    summary = "List campaigns",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::domain::raffle::Campaign>),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_campaigns(
    _admin: AdminCaller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing = db::campaigns::list_campaigns(&state.pool, page.window()).await?;
    page.respond(&request, listing)
}

#[utoipa::path(
    get,
    path = "/api/raffles/campaigns/{id}/",
    tag = "raffles",
    summary = "Read a campaign",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "OK", body = crate::domain::raffle::Campaign),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn get_campaign(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let campaign = db::campaigns::find_campaign(&state.pool, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(campaign))
}

#[utoipa::path(
    post,
    path = "/api/raffles/campaigns/",
    tag = "raffles",
    summary = "Create a campaign",
    request_body = crate::http::openapi::schemas::CampaignWrite,
    responses(
        (status = 201, description = "Created", body = crate::domain::raffle::Campaign),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn create_campaign(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let fields = read_campaign(body.parse()?, Presence::Required)?;
    let campaign = db::campaigns::insert_campaign(&state.pool, &fields).await?;
    state.engine.campaign_opened(campaign.id);
    Ok(HttpResponse::Created().json(campaign))
}

#[utoipa::path(
    put,
    path = "/api/raffles/campaigns/{id}/",
    tag = "raffles",
    summary = "Replace a campaign",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::CampaignWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::raffle::Campaign),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn replace_campaign(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_campaign(admin, path, state, body, Presence::Required).await
}

#[utoipa::path(
    patch,
    path = "/api/raffles/campaigns/{id}/",
    tag = "raffles",
    summary = "Update some fields of a campaign",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::CampaignWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::raffle::Campaign),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn update_campaign(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_campaign(admin, path, state, body, Presence::Optional).await
}

async fn write_campaign(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
    presence: Presence,
) -> Result<HttpResponse, ApiError> {
    let fields = read_campaign(body.parse()?, presence)?;
    let campaign = db::campaigns::update_campaign(&state.pool, path.into_inner(), &fields)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(campaign))
}

#[utoipa::path(
    delete,
    path = "/api/raffles/campaigns/{id}/",
    tag = "raffles",
    summary = "Delete a campaign",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn delete_campaign(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let campaign_id = path.into_inner();
    if !db::campaigns::delete_campaign(&state.pool, campaign_id).await? {
        return Err(ApiError::NotFound);
    }
    state.engine.campaign_closed(campaign_id);
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/raffles/campaigns/{id}/subscribers/",
    tag = "raffles",
    summary = "A campaign's subscribers",
    params(("id" = i64, Path, description = "The object's integer id"), crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::domain::raffle::Subscriber>),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_subscribers(
    _admin: AdminCaller,
    path: web::Path<i64>,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing = db::subscribers::list_subscribers(&state.pool, path.into_inner(), page.window())
        .await?
        .ok_or(ApiError::NotFound)?;
    page.respond(&request, listing)
}

#[derive(Serialize, ToSchema)]
struct FinishBody {
    campaign: Campaign,
    winner: Winner,
}

/// How long one attempt at the draw may take before its outcome is in doubt.
const DRAW_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to settle a draw whose commit went unheard.
const SETTLE_PAUSE: Duration = Duration::from_millis(500);

/// Finishes the campaign, learning the real outcome of a draw whose commit
/// went unheard: once its fence is settled the finish is asked again, which
/// answers the recorded winners if it committed (`true`: tell the engine, as
/// the draw's own answer was lost) or draws now if it did not. Past
/// [`OUTCOME_WAIT`] the answer is `outcome_unknown`.
async fn draw_for_sure(state: &AppState, campaign_id: i64) -> Result<(Finish, bool), ApiError> {
    let give_up = tokio::time::Instant::now() + OUTCOME_WAIT;
    let mut settled_late = false;
    loop {
        match db::campaigns::finish_campaign(&state.pool, campaign_id, DRAW_TIMEOUT).await {
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

/// `GET finish_campaign/`: draws the winner (or answers the one drawn before).
#[utoipa::path(
    get,
    path = "/api/raffles/campaigns/{id}/finish_campaign/",
    tag = "raffles",
    summary = "Draw the winner and close the campaign",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "The campaign and its winner (the same on a repeat)", body = super::campaigns::FinishBody),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`no_verified_subscribers`: nobody to draw (the campaign stays open)", body = crate::http::openapi::schemas::ErrorBody),
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
    summary = "Draw the winner and close the campaign",
    params(("id" = i64, Path, description = "The object's integer id"), ("Idempotency-Key" = Option<String>, Header, description = "1..200 printable ASCII characters: a repeat within 24 hours answers the first answer again")),
    responses(
        (status = 200, description = "The campaign and its winner (the same on a repeat)", body = super::campaigns::FinishBody),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`no_verified_subscribers`: nobody to draw (the campaign stays open)", body = crate::http::openapi::schemas::ErrorBody),
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

/// Draws the winner (or answers the one drawn before).
async fn finish(state: web::Data<AppState>, campaign_id: i64) -> Result<HttpResponse, ApiError> {
    let (finish, settled_late) = draw_for_sure(&state, campaign_id).await?;
    match finish {
        Finish::NotFound => Err(ApiError::NotFound),
        Finish::NoVerified => Err(ApiError::Conflict {
            code: "no_verified_subscribers",
            detail: "No subscriber of this campaign has verified their address yet; \
                     the campaign stays open."
                .into(),
        }),
        Finish::Finished {
            campaign,
            winner,
            drawn_now,
        } => {
            if drawn_now || settled_late {
                tracing::info!(campaign_id, winner_id = winner.id, "raffle drawn");
                state.engine.campaign_closed(campaign_id);
                state.engine.wake_mailer();
            }
            Ok(HttpResponse::Ok().json(FinishBody {
                campaign: *campaign,
                winner,
            }))
        }
    }
}

/// Reads a campaign body: every field but `description` for create and
/// replace, any for patch.
fn read_campaign(body: Value, presence: Presence) -> Result<CampaignFields, ApiError> {
    let mut form = Form::new(body)?;
    let name = form.field("name", presence, |value| {
        checked(Name::parse(text(value)?)).map(|name| name.as_str().to_owned())
    });
    let description = form.field("description", Presence::Optional, |value| {
        checked(parse_description(text(value)?))
    });
    let admin_email = form.field("admin_email", presence, |value| {
        checked(EmailAddress::parse(text(value)?)).map(|email| email.as_str().to_owned())
    });
    let email_subject = form.field("email_subject", presence, |value| {
        checked(parse_subject(text(value)?))
    });
    let email_template = form.field("email_template", presence, |value| {
        checked(parse_template(text(value)?))
    });
    form.finish()?;
    // Create and replace set every field: a description left out is empty.
    let description = description.or_else(|| (presence == Presence::Required).then(String::new));
    Ok(CampaignFields {
        name,
        description,
        admin_email,
        email_subject,
        email_template,
    })
}
