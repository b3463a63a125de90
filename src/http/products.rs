//! `/api/market/products/`: list and read for shoppers (with the store
//! embedded), writes for the admin (with `store_id`).
//!
//! Lowering a regular price to or below the price of one of the product's
//! promos that has not ended is refused (409 `promo_price_not_below_regular`)
//! by the database (`V9__promo_price_below_regular.sql`), so a promo created
//! at the same moment cannot slip past the check.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::auth::{AdminCaller, Caller};
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{checked, id, money, present, text, Form, Presence};
use super::pagination::PageRequest;
use super::{resource, AppState};
use crate::db;
use crate::db::products::ProductChanges;
use crate::domain::Name;

/// Registers the product routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/api/market/products")
                .route(web::get().to(list_products))
                .route(web::post().to(create_product)),
        )
        .service(
            resource("/api/market/products/{id:\\d+}")
                .route(web::get().to(get_product))
                .route(web::put().to(replace_product))
                .route(web::patch().to(update_product))
                .route(web::delete().to(delete_product)),
        );
}

#[utoipa::path(
    get,
    path = "/api/market/products/",
    tag = "market",
    summary = "List products",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::domain::entities::Product>),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_products(
    _caller: Caller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing = db::products::list_products(&state.pool, page.window()).await?;
    page.respond(&request, listing)
}

#[utoipa::path(
    get,
    path = "/api/market/products/{id}/",
    tag = "market",
    summary = "Read a product",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::Product),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
    )
)]
async fn get_product(
    _caller: Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let product = db::products::find_product(&state.pool, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(product))
}

#[utoipa::path(
    post,
    path = "/api/market/products/",
    tag = "market",
    summary = "Create a product",
    request_body = crate::http::openapi::schemas::ProductWrite,
    responses(
        (status = 201, description = "Created", body = crate::domain::entities::Product),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn create_product(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let changes = read_product(body.parse()?, Presence::Required)?;
    let product = db::products::insert_product(
        &state.pool,
        present(changes.store_id, "store_id")?,
        &present(changes.name, "name")?,
        present(changes.regular_price, "regular_price")?,
    )
    .await?;
    Ok(HttpResponse::Created().json(product))
}

#[utoipa::path(
    put,
    path = "/api/market/products/{id}/",
    tag = "market",
    summary = "Replace a product",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::ProductWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::Product),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`promo_price_not_below_regular`: a promo of this product that has not ended is priced at or above the new regular price", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn replace_product(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_product(admin, path, state, body, Presence::Required).await
}

#[utoipa::path(
    patch,
    path = "/api/market/products/{id}/",
    tag = "market",
    summary = "Update some fields of a product",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::ProductWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::Product),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`promo_price_not_below_regular`: a promo of this product that has not ended is priced at or above the new regular price", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn update_product(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_product(admin, path, state, body, Presence::Optional).await
}

async fn write_product(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
    presence: Presence,
) -> Result<HttpResponse, ApiError> {
    let changes = read_product(body.parse()?, presence)?;
    let product = db::products::update_product(&state.pool, path.into_inner(), &changes)
        .await?
        .ok_or(ApiError::NotFound)?;
    let promo_ids = db::promos::find_promo_ids_of(&state.pool, None, Some(product.id)).await?;
    state.engine.refresh_promos(&promo_ids).await?;
    Ok(HttpResponse::Ok().json(product))
}

#[utoipa::path(
    delete,
    path = "/api/market/products/{id}/",
    tag = "market",
    summary = "Delete a product",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn delete_product(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let promo_ids = db::promos::find_promo_ids_of(&state.pool, None, Some(id)).await?;
    if !db::products::delete_product(&state.pool, id).await? {
        return Err(ApiError::NotFound);
    }
    state.engine.stop_promos(&promo_ids).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reads a product body: every field for create and replace, any for patch.
fn read_product(body: Value, presence: Presence) -> Result<ProductChanges, ApiError> {
    let mut form = Form::new(body)?;
    let store_id = form.field("store_id", presence, id);
    let name = form.field("name", presence, |value| checked(Name::parse(text(value)?)));
    let regular_price = form.field("regular_price", presence, money);
    form.finish()?;
    Ok(ProductChanges {
        store_id,
        name,
        regular_price,
    })
}
