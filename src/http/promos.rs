//! `/api/promotions/flash-promos/`: promo CRUD for the admin, retrieve for
//! shoppers, and the in-memory `running/` and `eligible/` views.
//!
//! Writes are committed to PostgreSQL first, then announced to the
//! [`PromoRegistry`](crate::actors::promo_registry::PromoRegistry), which
//! starts, redefines or stops the promo's actor before the response is sent.
//! Lowering a running promo's quantity asks its actor first, so no hold
//! decided in between can use the units being removed.

use std::cell::Cell;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{AdminCaller, Caller};
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{
    boolean, checked, id, id_list, integer, money, nullable, number, present, text, timestamp,
    Form, Presence,
};
use super::pagination::PageRequest;
use super::{resource, AppState};
use crate::db;
use crate::domain::daily_window::DailyWindow;
use crate::domain::promo::{parse_quantity, FlashPromo, PromoTerms, RadiusKm, DEFAULT_RADIUS_KM};

/// Registers the promo routes (`running/` and `eligible/` before `{id}/`).
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/api/promotions/flash-promos")
                .route(web::get().to(list_promos))
                .route(web::post().to(create_promo)),
        )
        .service(
            resource("/api/promotions/flash-promos/running")
                .route(web::get().to(list_running_promos)),
        )
        .service(
            resource("/api/promotions/flash-promos/eligible")
                .route(web::get().to(list_eligible_promos)),
        )
        .service(
            resource("/api/promotions/flash-promos/{id:\\d+}")
                .route(web::get().to(get_promo))
                .route(web::put().to(replace_promo))
                .route(web::patch().to(update_promo))
                .route(web::delete().to(delete_promo)),
        );
}

#[utoipa::path(
    get,
    path = "/api/promotions/flash-promos/",
    tag = "promotions",
    summary = "List flash promos",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::domain::promo::FlashPromo>),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_promos(
    _admin: AdminCaller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing = db::promos::list_promos(&state.pool, page.window()).await?;
    page.respond(&request, listing)
}

#[utoipa::path(
    get,
    path = "/api/promotions/flash-promos/{id}/",
    tag = "promotions",
    summary = "Read a flash promo",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "OK", body = crate::domain::promo::FlashPromo),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
    )
)]
async fn get_promo(
    _caller: Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let promo = db::promos::find_promo(&state.pool, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(promo))
}

#[utoipa::path(
    get,
    path = "/api/promotions/flash-promos/running/",
    tag = "promotions",
    summary = "Promos running now",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::domain::promo::FlashPromo>),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_running_promos(
    _caller: Caller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let running = state.engine.running(page.window());
    page.respond_json(&request, running)
}

/// An `eligible/` item: a promo with the caller's distance to its store.
/// The body is written from pre-rendered JSON
/// ([`PromoJson`](crate::domain::promo_json::PromoJson)); this type only
/// describes that shape to the OpenAPI document.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct EligiblePromo {
    #[serde(flatten)]
    promo: FlashPromo,
    distance_km: f64,
}

#[utoipa::path(
    get,
    path = "/api/promotions/flash-promos/eligible/",
    tag = "promotions",
    summary = "Running promos the caller may reserve, nearest first",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<super::promos::EligiblePromo>),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_eligible_promos(
    Caller(account): Caller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let eligible = state.engine.eligible_json(account.id, page.window());
    page.respond_json(&request, eligible)
}

#[utoipa::path(
    post,
    path = "/api/promotions/flash-promos/",
    tag = "promotions",
    summary = "Create a flash promo",
    request_body = crate::http::openapi::schemas::PromoWrite,
    responses(
        (status = 201, description = "Created", body = crate::domain::promo::FlashPromo),
        (status = 409, description = "`overlap`: another promo of this product overlaps the window; `quantity_below_committed`: the quantity would drop below held + sold", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn create_promo(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let fields = read_promo(body.parse()?, Presence::Required)?;
    let terms = fields.into_terms(None)?;
    check_terms(&state, &terms, true, None).await?;
    let promo = db::promos::insert_promo(&state.pool, &terms).await?;
    state.engine.announce_promo(&promo).await?;
    Ok(HttpResponse::Created().json(promo))
}

#[utoipa::path(
    put,
    path = "/api/promotions/flash-promos/{id}/",
    tag = "promotions",
    summary = "Replace a flash promo",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::PromoWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::promo::FlashPromo),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`overlap`: another promo of this product overlaps the window; `quantity_below_committed`: the quantity would drop below held + sold", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn replace_promo(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_promo(admin, path.into_inner(), state, body, Presence::Required).await
}

#[utoipa::path(
    patch,
    path = "/api/promotions/flash-promos/{id}/",
    tag = "promotions",
    summary = "Update some fields of a flash promo",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::PromoWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::promo::FlashPromo),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`overlap`: another promo of this product overlaps the window; `quantity_below_committed`: the quantity would drop below held + sold", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn update_promo(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_promo(admin, path.into_inner(), state, body, Presence::Optional).await
}

/// Replaces (`Required`) or patches (`Optional`) a promo as one locked
/// read-modify-write, so concurrent writes of one promo each see the other's
/// committed change instead of writing back what they read before it.
async fn write_promo(
    _admin: AdminCaller,
    promo_id: i64,
    state: web::Data<AppState>,
    body: JsonBody,
    presence: Presence,
) -> Result<HttpResponse, ApiError> {
    let lowered = Cell::new(false);
    let decide = |current| decide_terms(&state, current, &body, presence, &lowered);
    match db::promos::update_promo(&state.pool, promo_id, decide).await {
        Ok(Some(updated)) => {
            state.engine.announce_promo(&updated).await?;
            Ok(HttpResponse::Ok().json(updated))
        }
        Ok(None) => Err(ApiError::NotFound),
        Err(error) => {
            if lowered.get() {
                // Give the actor back the quantity the database still has.
                if let Some(unchanged) = db::promos::find_promo(&state.pool, promo_id).await? {
                    state.engine.announce_promo(&unchanged).await?;
                }
            }
            Err(error)
        }
    }
}

/// The new terms from the body and the promo as it stands under the lock.
/// Lowering a running promo's quantity asks its actor first (`lowered` then
/// says the actor must hear the outcome even if the write fails).
async fn decide_terms(
    state: &AppState,
    current: FlashPromo,
    body: &JsonBody,
    presence: Presence,
    lowered: &Cell<bool>,
) -> Result<PromoTerms, ApiError> {
    let fields = read_promo(body.parse()?, presence)?;
    let end_is_set = fields.end_time.is_some();
    // A replace takes every omitted optional field's default; a patch keeps the current value.
    let base = (presence == Presence::Optional).then_some(&current);
    let terms = fields.into_terms(base)?;
    // The locked promo's own product needs no read (and no second pooled
    // connection while this one holds the row lock).
    check_terms(state, &terms, end_is_set, Some(&current.product)).await?;
    if terms.quantity < current.quantity {
        state
            .engine
            .prepare_quantity_change(current.id, terms.quantity)
            .await?;
        lowered.set(true);
    }
    Ok(terms)
}

#[utoipa::path(
    delete,
    path = "/api/promotions/flash-promos/{id}/",
    tag = "promotions",
    summary = "Delete a flash promo",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn delete_promo(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let promo_id = path.into_inner();
    if !db::promos::delete_promo(&state.pool, promo_id).await? {
        return Err(ApiError::NotFound);
    }
    state.engine.stop_promos(&[promo_id]).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The rules that need the product's price, reported per field.
async fn check_terms(
    state: &AppState,
    terms: &PromoTerms,
    end_is_set: bool,
    known: Option<&crate::domain::entities::Product>,
) -> Result<(), ApiError> {
    let product = match known.filter(|product| product.id == terms.product_id) {
        Some(product) => product.clone(),
        None => db::products::find_product(&state.pool, terms.product_id)
            .await?
            .ok_or_else(|| ApiError::field("product_id", "no product has this id"))?,
    };
    let errors = terms.check(product.regular_price, end_is_set, Utc::now());
    if errors.is_empty() {
        return Ok(());
    }
    let mut fields = super::error::FieldErrors::new();
    for error in errors {
        fields
            .entry(error.field().to_owned())
            .or_default()
            .push(error.to_string());
    }
    Err(ApiError::Validation(fields))
}

/// A promo body as read; `None` fields keep the current value (patch) or take
/// their default (create).
struct PromoFields {
    product_id: Option<i64>,
    promo_price: Option<crate::domain::Money>,
    start_time: Option<chrono::DateTime<Utc>>,
    end_time: Option<chrono::DateTime<Utc>>,
    segment_ids: Option<Vec<i64>>,
    max_distance_km: Option<RadiusKm>,
    is_active: Option<bool>,
    quantity: Option<u32>,
    /// `Some(None)`: written as `null` (continuous).
    daily_window: Option<Option<DailyWindow>>,
}

fn read_promo(body: Value, presence: Presence) -> Result<PromoFields, ApiError> {
    let mut form = Form::new(body)?;
    let fields = PromoFields {
        product_id: form.field("product_id", presence, id),
        promo_price: form.field("promo_price", presence, money),
        start_time: form.field("start_time", presence, timestamp),
        end_time: form.field("end_time", presence, timestamp),
        segment_ids: form.field("segment_ids", presence, id_list),
        max_distance_km: form.field("max_distance_km", Presence::Optional, |value| {
            checked(RadiusKm::parse(number(value)?))
        }),
        is_active: form.field("is_active", Presence::Optional, boolean),
        quantity: form.field("quantity", Presence::Optional, |value| {
            checked(parse_quantity(integer(value)?))
        }),
        daily_window: form.field("daily_window", Presence::Optional, nullable(daily_window)),
    };
    form.finish()?;
    Ok(fields)
}

impl PromoFields {
    /// Completes the fields from `current` (an update) or the defaults (a create).
    fn into_terms(self, current: Option<&FlashPromo>) -> Result<PromoTerms, ApiError> {
        let keep = |name: &str| -> Result<&FlashPromo, ApiError> { present(current, name) };
        Ok(PromoTerms {
            product_id: match self.product_id {
                Some(product_id) => product_id,
                None => keep("product_id")?.product.id,
            },
            promo_price: match self.promo_price {
                Some(price) => price,
                None => keep("promo_price")?.promo_price,
            },
            start_time: match self.start_time {
                Some(time) => time,
                None => keep("start_time")?.start_time,
            },
            end_time: match self.end_time {
                Some(time) => time,
                None => keep("end_time")?.end_time,
            },
            segment_ids: match self.segment_ids {
                Some(ids) => ids,
                None => keep("segment_ids")?.segment_ids().collect(),
            },
            max_distance_km: match (self.max_distance_km, current) {
                (Some(radius), _) => radius,
                (None, Some(current)) => RadiusKm::parse(current.max_distance_km)
                    .map_err(|error| ApiError::Internal(error.into()))?,
                (None, None) => RadiusKm::parse(DEFAULT_RADIUS_KM)
                    .map_err(|error| ApiError::Internal(error.into()))?,
            },
            is_active: self
                .is_active
                .or(current.map(|promo| promo.is_active))
                .unwrap_or(true),
            quantity: self
                .quantity
                .or(current.map(|promo| promo.quantity))
                .unwrap_or(1),
            daily_window: self
                .daily_window
                .or(current.map(|promo| promo.daily_window))
                .flatten(),
        })
    }
}

/// `{"start": "HH:MM", "end": "HH:MM", "timezone": "<IANA name>"}`, each
/// problem named by its sub-field.
fn daily_window(value: &Value) -> Result<DailyWindow, String> {
    let Value::Object(fields) = value else {
        return Err("must be null or an object with start, end and timezone".into());
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !["start", "end", "timezone"].contains(&key.as_str()))
    {
        return Err(format!("{unknown}: unknown field"));
    }
    let part = |name: &str| -> Result<&str, String> {
        fields
            .get(name)
            .ok_or_else(|| "this field is required".to_owned())
            .and_then(text)
            .map_err(|message| format!("{name}: {message}"))
    };
    let (start, end, timezone) = (part("start")?, part("end")?, part("timezone")?);
    DailyWindow::parse(start, end, timezone).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}
