//! `/api/market/stores/`: list and read for shoppers, writes for the admin.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::auth::{AdminCaller, Caller};
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{checked, number, present, text, Form, Presence};
use super::pagination::PageRequest;
use super::{resource, AppState};
use crate::db;
use crate::db::stores::StoreChanges;
use crate::domain::{GeoPoint, Latitude, Longitude, Name};

/// Registers the store routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/api/market/stores")
                .route(web::get().to(list_stores))
                .route(web::post().to(create_store)),
        )
        .service(
            resource("/api/market/stores/{id:\\d+}")
                .route(web::get().to(get_store))
                .route(web::put().to(replace_store))
                .route(web::patch().to(update_store))
                .route(web::delete().to(delete_store)),
        );
}

#[utoipa::path(
    get,
    path = "/api/market/stores/",
    tag = "market",
    summary = "List stores",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::domain::entities::Store>),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_stores(
    _caller: Caller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing = db::stores::list_stores(&state.pool, page.window()).await?;
    page.respond(&request, listing)
}

#[utoipa::path(
    get,
    path = "/api/market/stores/{id}/",
    tag = "market",
    summary = "Read a store",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::Store),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
    )
)]
async fn get_store(
    _caller: Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = db::stores::find_store(&state.pool, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(store))
}

#[utoipa::path(
    post,
    path = "/api/market/stores/",
    tag = "market",
    summary = "Create a store",
    request_body = crate::http::openapi::schemas::StoreWrite,
    responses(
        (status = 201, description = "Created", body = crate::domain::entities::Store),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn create_store(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let changes = read_store(body.parse()?, Presence::Required)?;
    let location = GeoPoint::parse(
        present(changes.latitude, "latitude")?,
        present(changes.longitude, "longitude")?,
    )
    .map_err(|error| ApiError::Internal(error.into()))?;
    let name = present(changes.name, "name")?;
    let store = db::stores::insert_store(&state.pool, &name, location).await?;
    Ok(HttpResponse::Created().json(store))
}

#[utoipa::path(
    put,
    path = "/api/market/stores/{id}/",
    tag = "market",
    summary = "Replace a store",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::StoreWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::Store),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn replace_store(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_store(admin, path, state, body, Presence::Required).await
}

#[utoipa::path(
    patch,
    path = "/api/market/stores/{id}/",
    tag = "market",
    summary = "Update some fields of a store",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::StoreWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::Store),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn update_store(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_store(admin, path, state, body, Presence::Optional).await
}

async fn write_store(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
    presence: Presence,
) -> Result<HttpResponse, ApiError> {
    let changes = read_store(body.parse()?, presence)?;
    let store = db::stores::update_store(&state.pool, path.into_inner(), &changes)
        .await?
        .ok_or(ApiError::NotFound)?;
    let promo_ids = db::promos::find_promo_ids_of(&state.pool, Some(store.id), None).await?;
    state.engine.refresh_promos(&promo_ids).await?;
    Ok(HttpResponse::Ok().json(store))
}

#[utoipa::path(
    delete,
    path = "/api/market/stores/{id}/",
    tag = "market",
    summary = "Delete a store",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn delete_store(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let promo_ids = db::promos::find_promo_ids_of(&state.pool, Some(id), None).await?;
    if !db::stores::delete_store(&state.pool, id).await? {
        return Err(ApiError::NotFound);
    }
    state.engine.stop_promos(&promo_ids).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reads a store body: every field for create and replace, any for patch.
fn read_store(body: Value, presence: Presence) -> Result<StoreChanges, ApiError> {
    let mut form = Form::new(body)?;
    let name = form.field("name", presence, |value| checked(Name::parse(text(value)?)));
    let latitude = form.field("latitude", presence, |value| {
        checked(Latitude::parse(number(value)?)).map(Latitude::degrees)
    });
    let longitude = form.field("longitude", presence, |value| {
        checked(Longitude::parse(number(value)?)).map(Longitude::degrees)
    });
    form.finish()?;
    Ok(StoreChanges {
        name,
        latitude,
        longitude,
    })
}
