//! Schemas that exist only to describe the API: request bodies (the
//! handlers read bodies field by field through `http::form`, so these
//! structs document that reading rather than drive it), the error body, the
//! page query and the small JSON answers built inline.
//!
//! Name patterns say what `domain::Name` accepts (not blank, no control
//! characters) in a regex both Python and ECMA read, for the fuzzers.
//!
//! Response types the handlers really serialize derive `ToSchema` where they
//! are defined; only `Money`'s schema is written by hand here (it serializes
//! itself as a two-decimal string).

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::domain::entities::AccountSummary;

use crate::domain::Money;

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^[0-9]+\.[0-9]{2}$"))
            .description(Some("A decimal amount with two places"))
            .examples(["499.00"])
            .into()
    }
}

impl ToSchema for Money {}

/// Every error answer (API.md "Errors").
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The stable machine-readable code.
    pub code: String,
    /// A human explanation.
    pub detail: String,
    /// Per-field messages, for `validation_error`.
    #[schema(required = false)]
    pub fields: Option<BTreeMap<String, Vec<String>>>,
    /// Whole seconds to wait before retrying, when the code says so.
    #[schema(required = false, minimum = 1)]
    pub retry_after: Option<u64>,
}

/// `?page=N&page_size=M`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1); a page past the last is 404.
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// Rows per page (default 10); values over 100 are read as 100.
    #[param(minimum = 1)]
    pub page_size: Option<i64>,
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, ToSchema)]
pub struct StatusAnswer {
    pub status: String,
}

/// `POST /api/auth/token/`.
#[derive(ToSchema)]
pub struct TokenRequest {
    pub username: String,
    pub password: String,
}

/// A new token and who it signs in.
#[derive(ToSchema)]
pub struct TokenAnswer {
    /// Send as `Authorization: Bearer <token>` or `Token <token>`.
    pub token: String,
    pub user: AccountSummary,
}

/// A store write: every field for POST and PUT, any for PATCH.
#[derive(ToSchema)]
pub struct StoreWrite {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: f64,
}

/// A product write: every field for POST and PUT, any for PATCH.
#[derive(ToSchema)]
pub struct ProductWrite {
    /// An existing store.
    pub store_id: i64,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// Greater than zero; a string or a number.
    pub regular_price: Money,
}

/// A segment write: `name` for POST and PUT, any field for PATCH.
#[derive(ToSchema)]
pub struct SegmentWrite {
    /// Unique, ignoring case.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(max_length = 1000, required = false)]
    pub description: Option<String>,
}

/// A client profile write. POST needs `username` and `password`; PUT every
/// field but `password`; PATCH any.
#[derive(ToSchema)]
pub struct ClientWrite {
    #[schema(pattern = r"^[A-Za-z0-9@.+_-]{1,150}$")]
    pub username: String,
    #[schema(min_length = 8, max_length = 256, required = false)]
    pub password: Option<String>,
    #[schema(format = Email, required = false)]
    pub email: Option<String>,
    #[schema(minimum = -90, maximum = 90, required = false)]
    pub latitude: Option<f64>,
    #[schema(minimum = -180, maximum = 180, required = false)]
    pub longitude: Option<f64>,
    #[schema(required = false)]
    pub segment_ids: Option<Vec<i64>>,
}

/// `PATCH clients-profiles/me/`: the live location only.
#[derive(ToSchema)]
pub struct LocationWrite {
    #[schema(minimum = -90, maximum = 90, required = false)]
    pub latitude: Option<f64>,
    #[schema(minimum = -180, maximum = 180, required = false)]
    pub longitude: Option<f64>,
}

/// A flash promo write: every field without a default for POST and PUT, any for PATCH.
#[derive(ToSchema)]
pub struct PromoWrite {
    pub product_id: i64,
    /// Above zero and below the product's regular price.
    pub promo_price: Money,
    /// RFC 3339 with an offset.
    pub start_time: chrono::DateTime<chrono::Utc>,
    /// After `start_time`, in the future.
    pub end_time: chrono::DateTime<chrono::Utc>,
    /// Non-empty.
    #[schema(min_items = 1)]
    pub segment_ids: Vec<i64>,
    /// Default 2.0; in (0, 100].
    #[schema(exclusive_minimum = 0, maximum = 100, required = false)]
    pub max_distance_km: Option<f64>,
    /// Default true.
    #[schema(required = false)]
    pub is_active: Option<bool>,
    /// Units on offer per occurrence, default 1.
    #[schema(minimum = 1, required = false)]
    pub quantity: Option<u32>,
    /// `null` (the default): one continuous window. Otherwise the promo runs
    /// every day between these local times, within `start_time`..`end_time`.
    #[schema(required = false, nullable)]
    pub daily_window: Option<crate::domain::daily_window::DailyWindow>,
}

/// `POST promo-reservations/`.
#[derive(ToSchema)]
pub struct ReserveRequest {
    pub promo_id: i64,
}

/// A campaign edit: every field but `description` and the lifecycle fields for
/// PUT, any for PATCH. `status` is not writable (use `open/`, `cancel/`).
#[derive(ToSchema)]
pub struct CampaignWrite {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(max_length = 5000, required = false)]
    pub description: Option<String>,
    #[schema(format = Email)]
    pub admin_email: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub email_subject: String,
    /// Must contain `{{verify_url}}`.
    #[schema(max_length = 20000, pattern = r"\{\{verify_url\}\}")]
    pub email_template: String,
    /// How many distinct winners the draw picks (default 1; kept when left out).
    #[schema(minimum = 1, maximum = 1000, required = false)]
    pub winners_count: Option<i32>,
    /// When a draft opens by itself (only while it is a draft); null: opened by hand.
    #[schema(required = false)]
    pub opens_at: Option<chrono::DateTime<chrono::Utc>>,
    /// From then on the campaign takes no entries (must be later than `opens_at`).
    #[schema(required = false)]
    pub closes_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The status a campaign is created with.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum NewCampaignStatus {
    Draft,
    Open,
}

/// A campaign create: every field but `description`, `status`, `winners_count`,
/// `opens_at` and `closes_at` is required.
#[derive(ToSchema)]
pub struct CampaignCreate {
    /// `open` (the default) opens it at once; a `draft` opens by hand or at `opens_at`.
    #[schema(required = false)]
    pub status: Option<NewCampaignStatus>,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(max_length = 5000, required = false)]
    pub description: Option<String>,
    #[schema(format = Email)]
    pub admin_email: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub email_subject: String,
    /// Must contain `{{verify_url}}`.
    #[schema(max_length = 20000, pattern = r"\{\{verify_url\}\}")]
    pub email_template: String,
    /// How many distinct winners the draw picks (default 1; kept when left out).
    #[schema(minimum = 1, maximum = 1000, required = false)]
    pub winners_count: Option<i32>,
    /// When a draft opens by itself (a draft only); null: opened by hand.
    #[schema(required = false)]
    pub opens_at: Option<chrono::DateTime<chrono::Utc>>,
    /// From then on the campaign takes no entries (must be later than `opens_at`).
    #[schema(required = false)]
    pub closes_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST /api/outbox/requeue/`.
#[derive(ToSchema)]
pub struct RequeueWrite {
    /// The emails to queue again; absent: every abandoned one.
    #[schema(required = false)]
    pub ids: Option<Vec<i64>>,
}

/// `POST add_subscriber/`.
#[derive(ToSchema)]
pub struct SubscriberWrite {
    #[schema(format = Email)]
    pub email: String,
    /// Any JSON object up to 4 KiB.
    #[schema(value_type = Object, required = false)]
    pub data: Option<serde_json::Value>,
}

/// `GET verify_subscriber/` answered as JSON.
#[derive(ToSchema)]
pub struct VerifyAnswer {
    pub verified: bool,
    pub campaign_id: i64,
}
