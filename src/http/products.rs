//! `/api/market/products/`: list and read for shoppers (with the store
//! embedded), writes for the admin (with `store_id`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::auth::{AdminCaller, Caller};
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{checked, id, money, present, text, Form, Presence};
use super::pagination::PageRequest;
use super::promos::{refresh_promos, stop_promos};
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

async fn list_products(
    _caller: Caller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing = db::products::list_products(&state.pool, page.window()).await?;
    page.respond(&request, listing)
}

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

async fn replace_product(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_product(admin, path, state, body, Presence::Required).await
}

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
    refresh_promos(&state, &promo_ids).await?;
    Ok(HttpResponse::Ok().json(product))
}

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
    stop_promos(&state, promo_ids).await;
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
