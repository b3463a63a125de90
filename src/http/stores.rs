//! `/api/market/stores/`: list and read for shoppers, writes for the admin.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::auth::{AdminCaller, Caller};
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{checked, number, present, text, Form, Presence};
use super::pagination::PageRequest;
use super::promos::{refresh_promos, stop_promos};
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

async fn list_stores(
    _caller: Caller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing = db::stores::list_stores(&state.pool, page.window()).await?;
    page.respond(&request, listing)
}

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

async fn replace_store(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_store(admin, path, state, body, Presence::Required).await
}

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
    refresh_promos(&state, &promo_ids).await?;
    Ok(HttpResponse::Ok().json(store))
}

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
    stop_promos(&state, promo_ids).await;
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
