//! `/api/users/user-segments/`: segment CRUD, for the admin only.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::auth::AdminCaller;
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{checked, present, text, Form, Presence};
use super::pagination::PageRequest;
use super::{resource, AppState};
use crate::db;
use crate::db::segments::SegmentChanges;
use crate::domain::Name;

/// The longest segment description accepted, in characters.
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// Registers the segment routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/api/users/user-segments")
                .route(web::get().to(list_segments))
                .route(web::post().to(create_segment)),
        )
        .service(
            resource("/api/users/user-segments/{id:\\d+}")
                .route(web::get().to(get_segment))
                .route(web::put().to(replace_segment))
                .route(web::patch().to(update_segment))
                .route(web::delete().to(delete_segment)),
        );
}

#[utoipa::path(
    get,
    path = "/api/users/user-segments/",
    tag = "users",
    summary = "List segments",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::domain::entities::Segment>),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_segments(
    _admin: AdminCaller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing = db::segments::list_segments(&state.pool, page.window()).await?;
    page.respond(&request, listing)
}

#[utoipa::path(
    get,
    path = "/api/users/user-segments/{id}/",
    tag = "users",
    summary = "Read a segment",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::Segment),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn get_segment(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let segment = db::segments::find_segment(&state.pool, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(segment))
}

#[utoipa::path(
    post,
    path = "/api/users/user-segments/",
    tag = "users",
    summary = "Create a segment",
    request_body = crate::http::openapi::schemas::SegmentWrite,
    responses(
        (status = 201, description = "Created", body = crate::domain::entities::Segment),
        (status = 409, description = "`duplicate`: a segment with this name exists (ignoring case)", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn create_segment(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let changes = read_segment(body.parse()?, Presence::Required)?;
    let description = changes.description.unwrap_or_default();
    let segment =
        db::segments::insert_segment(&state.pool, &present(changes.name, "name")?, &description)
            .await?;
    Ok(HttpResponse::Created().json(segment))
}

#[utoipa::path(
    put,
    path = "/api/users/user-segments/{id}/",
    tag = "users",
    summary = "Replace a segment",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::SegmentWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::Segment),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`duplicate`: a segment with this name exists (ignoring case)", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn replace_segment(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_segment(admin, path, state, body, Presence::Required).await
}

#[utoipa::path(
    patch,
    path = "/api/users/user-segments/{id}/",
    tag = "users",
    summary = "Update some fields of a segment",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::SegmentWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::Segment),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`duplicate`: a segment with this name exists (ignoring case)", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn update_segment(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_segment(admin, path, state, body, Presence::Optional).await
}

async fn write_segment(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
    presence: Presence,
) -> Result<HttpResponse, ApiError> {
    let mut changes = read_segment(body.parse()?, presence)?;
    if presence == Presence::Required {
        // Replacing without a description clears it.
        changes.description.get_or_insert_with(String::new);
    }
    let segment = db::segments::update_segment(&state.pool, path.into_inner(), &changes)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(segment))
}

#[utoipa::path(
    delete,
    path = "/api/users/user-segments/{id}/",
    tag = "users",
    summary = "Delete a segment",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`in_use`: a flash promo still targets this segment", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn delete_segment(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if db::segments::delete_segment(&state.pool, path.into_inner()).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

/// Reads a segment body; the description is always optional.
fn read_segment(body: Value, presence: Presence) -> Result<SegmentChanges, ApiError> {
    let mut form = Form::new(body)?;
    let name = form.field("name", presence, |value| checked(Name::parse(text(value)?)));
    let description = form.field("description", Presence::Optional, read_description);
    form.finish()?;
    Ok(SegmentChanges { name, description })
}

fn read_description(value: &Value) -> Result<String, String> {
    let description = match value {
        Value::Null => "",
        other => text(other)?,
    }
    .trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "must have at most {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    Ok(description.to_owned())
}
