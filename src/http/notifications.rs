//! `GET /api/users/notifications/`: a shopper's flash-promo notifications,
//! newest first, each with its promo.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::ApiError;
use super::pagination::PageRequest;
use super::{resource, AppState};
use crate::db::{self, Listing};
use crate::domain::promo::FlashPromo;

/// Registers the notification inbox.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(resource("/api/users/notifications").route(web::get().to(list_notifications)));
}

/// One notification as the inbox shows it.
#[derive(Serialize, ToSchema)]
struct NotificationView {
    id: i64,
    promo: FlashPromo,
    sent_at: DateTime<Utc>,
    delivered: bool,
}

#[utoipa::path(
    get,
    path = "/api/users/notifications/",
    tag = "users",
    summary = "The caller's flash-promo notifications, newest first",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<super::notifications::NotificationView>),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_notifications(
    Caller(account): Caller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing =
        db::notifications::list_notifications(&state.pool, account.id, page.window()).await?;
    let promo_ids = listing.items.iter().map(|record| record.promo_id);
    let promos = db::promos::find_promos_by_id(&state.pool, promo_ids).await?;
    let items = listing
        .items
        .into_iter()
        .filter_map(|record| {
            let promo = promos.get(&record.promo_id)?.clone();
            Some(NotificationView {
                id: record.id,
                promo,
                sent_at: record.sent_at,
                delivered: record.delivered,
            })
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
