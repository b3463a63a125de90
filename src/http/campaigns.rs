//! `/api/raffles/campaigns/`: the admin's campaign CRUD and a campaign's
//! subscribers. The lifecycle moves (`open/`, `cancel/`, `finish_campaign/`)
//! are in [`super::campaign_lifecycle`], the published draw in
//! [`super::draws`].
//!
//! Creating an open campaign starts its `CampaignActor`; creating or editing
//! one tells the registry its opening and closing times (a draft's timer, the
//! actor's closing time); deleting one closes its actor. Text edits need no
//! message: each batch of entries reads the campaign's subject and template
//! inside its own transaction.

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::AdminCaller;
use super::body::JsonBody;
use super::campaign_form::{read_campaign_edit, read_new_campaign};
use super::error::ApiError;
use super::form::Presence;
use super::pagination::PageRequest;
use super::{campaign_lifecycle, draws, resource, AppState};
use crate::db;
use crate::db::campaigns::Edit;

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
        .configure(campaign_lifecycle::routes)
        .configure(draws::routes);
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
    request_body = crate::http::openapi::schemas::CampaignCreate,
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
    let new = read_new_campaign(body.parse()?)?;
    let campaign = db::campaigns::insert_campaign(&state.pool, &new.fields, new.open_now).await?;
    state.engine.campaign_changed(&campaign);
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
        (status = 409, description = "`campaign_closed`: `winners_count` or `closes_at` on a finished or cancelled campaign, `closes_at` once it has passed, `opens_at` on one that is not a draft", body = crate::http::openapi::schemas::ErrorBody),
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
        (status = 409, description = "`campaign_closed`: `winners_count` or `closes_at` on a finished or cancelled campaign, `closes_at` once it has passed, `opens_at` on one that is not a draft", body = crate::http::openapi::schemas::ErrorBody),
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
    let fields = read_campaign_edit(body.parse()?, presence)?;
    match db::campaigns::update_campaign(&state.pool, path.into_inner(), &fields).await? {
        Edit::NotFound => Err(ApiError::NotFound),
        Edit::Closed(status) => Err(ApiError::Conflict {
            code: "campaign_closed",
            detail: format!(
                "This campaign is {}: its winners count, opening and closing times can no \
                 longer change (opens_at only while it is a draft).",
                status.as_stored()
            ),
        }),
        Edit::WindowClosed => Err(ApiError::Conflict {
            code: "campaign_closed",
            detail: "This campaign's closing time has passed: it takes no more entries and \
                     its closing time can no longer change."
                .into(),
        }),
        Edit::ClosesBeforeOpening => {
            Err(ApiError::field("closes_at", "must be later than opens_at"))
        }
        Edit::Updated(campaign) => {
            // Only the times concern the registry (a draft's timer, the
            // actor's closing time); text edits are read by each batch.
            if fields.opens_at.is_some() || fields.closes_at.is_some() {
                state.engine.campaign_changed(&campaign);
            }
            Ok(HttpResponse::Ok().json(campaign))
        }
    }
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
