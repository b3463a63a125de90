//! The market and user entities as clients see them (API.md's JSON shapes).
//!
//! These are read models: built by `db` from rows and serialized by `http`.
//! Field names and nesting follow the original service so its clients keep working.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Money;

/// A physical store.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Store {
    pub id: i64,
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
}

/// A product of one store, read with its store embedded.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub store: Store,
    pub regular_price: Money,
}

/// A user segment ("New users", "Frequent buyers").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Segment {
    pub id: i64,
    pub name: String,
    pub description: String,
}

/// The account part of a client profile. A missing email reads as `""`, as in the original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProfileUser {
    pub id: i64,
    pub username: String,
    pub email: String,
}

/// A shopper's profile: account, segments and last known location.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ClientProfile {
    pub id: i64,
    pub user: ProfileUser,
    pub segments: Vec<Segment>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub last_notification_date: Option<DateTime<Utc>>,
}

/// Who is calling: the authenticated account behind a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccountSummary {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
}
