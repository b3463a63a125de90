//! Pure types and rules: checked values built with `parse`, entities as they
//! are shown to clients, and the account secrets (password hashes, tokens).
//!
//! Nothing here touches actix, SQL or the clock, so every rule is unit-tested
//! on its own.

pub mod account;
pub mod daily_window;
pub mod draw;
pub mod eligibility;
pub mod entities;
pub mod frames;
pub mod geo;
pub mod money;
pub mod name;
pub mod occurrence;
pub mod occurrence_stock;
pub mod promo;
pub mod promo_json;
pub mod raffle;
pub mod reservation;
pub mod secrets;
pub mod stock;

pub use account::{EmailAddress, Password, Username};
pub use geo::{GeoPoint, Latitude, Longitude};
pub use money::Money;
pub use name::Name;
