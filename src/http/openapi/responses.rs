//! The error answers many endpoints share, as sets an operation lists in
//! its `responses(...)`: who may call it ([`Public`], [`Shopper`],
//! [`Admin`]) and whether it reads a JSON body ([`JsonInput`],
//! [`RawJsonInput`]) or takes an `Idempotency-Key` ([`Idempotent`]). The sets
//! use disjoint statuses, so listing several never hides one; an endpoint's
//! own codes (404, 409, …) are listed at the endpoint.

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::IntoResponses;

/// An error response whose body is the `ErrorBody` schema.
pub fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn responses(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| ((*status).to_owned(), error_response(description)))
        .collect()
}

const UNAVAILABLE: (&str, &str) = (
    "503",
    "`unavailable`: the database cannot be reached or a bounded queue is full; nothing \
     was changed (`Retry-After` when the queue is full). On writes also `outcome_unknown`: \
     the commit was not confirmed in time (`Retry-After`).",
);
const UNAUTHENTICATED: (&str, &str) = (
    "401",
    "`not_authenticated`: no or bad credentials (Bearer, Token or Basic)",
);
const THROTTLED: (&str, &str) = (
    "429",
    "`rate_limited`: too many failed sign-ins for this username or address (`Retry-After`)",
);

/// No credentials needed.
pub struct Public;

impl IntoResponses for Public {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[UNAVAILABLE])
    }
}

/// Any authenticated user.
pub struct Shopper;

impl IntoResponses for Shopper {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[UNAUTHENTICATED, THROTTLED, UNAVAILABLE])
    }
}

/// The admin only.
pub struct Admin;

impl IntoResponses for Admin {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            UNAUTHENTICATED,
            (
                "403",
                "`permission_denied`: authenticated, but not the admin",
            ),
            THROTTLED,
            UNAVAILABLE,
        ])
    }
}

/// The body must be JSON; failed checks are `validation_error` with `fields`.
pub struct JsonInput;

impl IntoResponses for JsonInput {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = RawJsonInput::responses();
        all.extend(responses(&[(
            "400",
            "`bad_json`: the body is not JSON; `validation_error`: wrong types, missing, \
             unknown or read-only fields, failed checks (per field in `fields`)",
        )]));
        all
    }
}

/// The body must be JSON, with the endpoint listing its own 400 codes.
pub struct RawJsonInput;

impl IntoResponses for RawJsonInput {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            ("413", "`payload_too_large`: the body is over 64 KiB"),
            (
                "415",
                "`unsupported_media_type`: a body not declared as JSON",
            ),
        ])
    }
}

/// Takes an `Idempotency-Key` header.
pub struct Idempotent;

impl IntoResponses for Idempotent {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[(
            "422",
            "`idempotency_key_reused`: the same key was used with a different body",
        )])
    }
}

/// A paginated list (`?page=&page_size=`).
pub struct Paged;

impl IntoResponses for Paged {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            (
                "400",
                "`validation_error`: `page_size` is not an integer of at least 1",
            ),
            (
                "404",
                "`not_found`: a page past the last, or no object with the path's id",
            ),
        ])
    }
}
