//! `ApiError`: every way a request can fail, and the one place each becomes an
//! HTTP status and a stable `code`.
//!
//! Bodies are always JSON `{"code", "detail"}` (+ `fields` for validation).
//! Server-side failures answer a generic detail; their cause chain is logged
//! here and never sent.

use std::collections::BTreeMap;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::{DbError, Violation};
use crate::domain::eligibility::Ineligible;
use crate::engine::EngineError;

/// Messages per field, for `validation_error`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("{0}")]
    BadJson(String),
    /// Wrong types, missing or read-only fields, failed checks.
    #[error("invalid input: {0:?}")]
    Validation(FieldErrors),
    /// No credentials, or credentials that match nobody.
    #[error("{0}")]
    NotAuthenticated(&'static str),
    /// The token endpoint's wrong username or password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Authenticated, but this caller may not do this.
    #[error("permission denied")]
    PermissionDenied,
    /// No such object or route, or one that belongs to someone else.
    #[error("not found")]
    NotFound,
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A state conflict (`duplicate`, `in_use`, ...).
    #[error("{code}: {detail}")]
    Conflict { code: &'static str, detail: String },
    /// Authenticated, but refused for a domain reason (`not_in_segment`, `too_far`).
    #[error("{code}: {detail}")]
    Forbidden { code: &'static str, detail: String },
    /// A request that cannot be served as things stand (`location_unknown`).
    #[error("{code}: {detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// A well-formed request that contradicts an earlier one (422), e.g.
    /// `idempotency_key_reused`.
    #[error("{code}: {detail}")]
    UnprocessableEntity { code: &'static str, detail: String },
    /// A conflict that resolves by itself: retry after `retry_after` seconds.
    #[error("{code}: retry in {retry_after} s")]
    RetryLater {
        status: StatusCode,
        code: &'static str,
        detail: String,
        retry_after: u64,
    },
    /// The body is over the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body is not declared as JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The database cannot be reached now; nothing was changed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A part of the engine (a promo's or campaign's actor) is starting,
    /// stopping or not answering its mailbox; nothing was changed.
    #[error("engine unavailable: {0}")]
    EngineUnavailable(String),
    /// A bounded queue is full (password checks, queued work); nothing was
    /// changed. `detail` is safe to show the client.
    #[error("overloaded: {detail}")]
    Overloaded { detail: &'static str },
    /// A write was sent but its commit was not confirmed within the request's
    /// deadline: it may or may not have happened. The service settles it and
    /// the outcome shows in the caller's lists; a retry with the same
    /// `Idempotency-Key` returns it.
    #[error("outcome unknown; retry in {retry_after} s")]
    OutcomeUnknown { retry_after: u64 },
    /// An engine call failed: its `code` and `detail` are the engine's
    /// (the WebSocket edge sends the same); the status is decided here.
    #[error(transparent)]
    Engine(EngineError),
    /// A bug or an unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a FieldErrors>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

impl ApiError {
    /// A validation error on one field.
    pub fn field(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation(FieldErrors::from([(name.to_owned(), vec![message.into()])]))
    }

    /// The stable machine-readable code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadJson(_) => "bad_json",
            ApiError::Validation(_) => "validation_error",
            ApiError::NotAuthenticated(_) => "not_authenticated",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::PermissionDenied => "permission_denied",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::UnprocessableEntity { code, .. }
            | ApiError::RetryLater { code, .. } => code,
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unavailable(_)
            | ApiError::EngineUnavailable(_)
            | ApiError::Overloaded { .. } => "unavailable",
            ApiError::OutcomeUnknown { .. } => "outcome_unknown",
            ApiError::Engine(error) => error.code(),
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The human `detail` a client is shown (generic for server-side failures).
    pub fn detail(&self) -> String {
        match self {
            ApiError::BadJson(reason) => format!("Malformed JSON: {reason}"),
            ApiError::Validation(_) => "Invalid input.".into(),
            ApiError::NotAuthenticated(reason) => (*reason).into(),
            ApiError::InvalidCredentials => {
                "Unable to log in with the provided credentials.".into()
            }
            ApiError::PermissionDenied => {
                "You do not have permission to perform this action.".into()
            }
            ApiError::NotFound => "Not found.".into(),
            ApiError::MethodNotAllowed => "Method not allowed on this path.".into(),
            ApiError::Conflict { detail, .. }
            | ApiError::Forbidden { detail, .. }
            | ApiError::Unprocessable { detail, .. }
            | ApiError::UnprocessableEntity { detail, .. }
            | ApiError::RetryLater { detail, .. } => detail.clone(),
            ApiError::PayloadTooLarge => "Request body is larger than 64 KiB.".into(),
            ApiError::UnsupportedMediaType => "Send the body as application/json.".into(),
            ApiError::Unavailable(_) => {
                "The service cannot reach its database; nothing was changed. Retry shortly.".into()
            }
            ApiError::EngineUnavailable(_) => {
                "The engine could not take this request just now (a promo or campaign is \
                 restarting, or the database refused the change); nothing was changed. \
                 Retry shortly."
                    .into()
            }
            ApiError::Overloaded { detail } => (*detail).into(),
            ApiError::OutcomeUnknown { .. } => "The database did not confirm in time whether the \
                change was made. Retry with the same Idempotency-Key to learn the outcome."
                .into(),
            ApiError::Engine(error) => error.detail(),
            ApiError::Internal(_) => "Internal server error.".into(),
        }
    }

    /// Seconds the client should wait before retrying, if the contract says.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RetryLater { retry_after, .. } | ApiError::OutcomeUnknown { retry_after } => {
                Some(*retry_after)
            }
            ApiError::Overloaded { .. } => Some(1),
            ApiError::Engine(error) => error.retry_after(),
            _ => None,
        }
    }
}

/// The status of each way an engine call fails.
fn engine_status(error: &EngineError) -> StatusCode {
    match error {
        EngineError::NotFound => StatusCode::NOT_FOUND,
        EngineError::Ineligible(Ineligible::LocationUnknown) | EngineError::InvalidLocation => {
            StatusCode::BAD_REQUEST
        }
        EngineError::Ineligible(_) => StatusCode::FORBIDDEN,
        EngineError::PromoNotRunning
        | EngineError::Stock(_)
        | EngineError::ReservationExpired
        | EngineError::ReservationCancelled
        | EngineError::AlreadyCompleted
        | EngineError::AlreadySubscribed
        | EngineError::CampaignClosed => StatusCode::CONFLICT,
        EngineError::NotWritten(_)
        | EngineError::Busy(_)
        | EngineError::Mailbox { .. }
        | EngineError::Overloaded(_)
        | EngineError::OutcomeUnknown => StatusCode::SERVICE_UNAVAILABLE,
        EngineError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadJson(_) | ApiError::Validation(_) | ApiError::Unprocessable { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::UnprocessableEntity { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RetryLater { status, .. } => *status,
            ApiError::NotAuthenticated(_) | ApiError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::PermissionDenied => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_)
            | ApiError::EngineUnavailable(_)
            | ApiError::Overloaded { .. }
            | ApiError::OutcomeUnknown { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Engine(error) => engine_status(error),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            ApiError::EngineUnavailable(cause) => tracing::warn!(%cause, "engine unavailable"),
            ApiError::OutcomeUnknown { .. } => tracing::warn!("write outcome unknown"),
            ApiError::Engine(error) if self.status_code().is_server_error() => {
                tracing::warn!(%error, "engine call failed")
            }
            _ => {}
        }
        let detail = self.detail();
        let fields = match self {
            ApiError::Validation(fields) => Some(fields),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::NotAuthenticated(_)) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"api\""));
        }
        let retry_after = self.retry_after();
        if let Some(seconds) = retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(ErrorBody {
            code: self.code(),
            detail: &detail,
            fields,
            retry_after,
        })
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound => ApiError::NotFound,
            EngineError::Database(error) => error.into(),
            other => ApiError::Engine(other),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(cause) => ApiError::Unavailable(cause),
            DbError::Violation(violation) => violation.into(),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<Violation> for ApiError {
    fn from(violation: Violation) -> Self {
        match violation {
            Violation::DuplicateUsername => ApiError::Conflict {
                code: "duplicate",
                detail: "A user with that username already exists.".into(),
            },
            Violation::DuplicateSegmentName => ApiError::Conflict {
                code: "duplicate",
                detail: "A segment with that name already exists.".into(),
            },
            Violation::SegmentInUse => ApiError::Conflict {
                code: "in_use",
                detail: "A flash promo still targets this segment.".into(),
            },
            Violation::UnknownStore => ApiError::field("store_id", "no store has this id"),
            Violation::UnknownProduct => ApiError::field("product_id", "no product has this id"),
            Violation::PromoOverlap => ApiError::Conflict {
                code: "overlap",
                detail: "This product already has a flash promo whose window overlaps this one."
                    .into(),
            },
            Violation::QuantityBelowCommitted => ApiError::Conflict {
                code: "quantity_below_committed",
                detail: "The quantity cannot drop below the units held or sold.".into(),
            },
            Violation::UnknownSegment => {
                ApiError::field("segment_ids", "every id must name an existing segment")
            }
            Violation::PromoPriceNotBelowRegular => {
                ApiError::field("promo_price", "must be below the product's regular price")
            }
            Violation::RegularPriceNotAbovePromos => ApiError::Conflict {
                code: "promo_price_not_below_regular",
                detail: "A flash promo of this product that has not ended is priced at or above \
                         this regular price; change or delete the promo first."
                    .into(),
            },
            // Only fenced engine writes meet it, and the engine answers those
            // itself; a request path that gets here retries on the new owner.
            Violation::StaleLease => ApiError::Unavailable(
                "The promo or campaign moved to another instance; nothing was changed. Retry \
                 shortly."
                    .into(),
            ),
            Violation::Other(constraint) => {
                ApiError::Internal(anyhow::anyhow!("unexpected constraint {constraint}"))
            }
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(anyhow::anyhow!("blocking task failed: {error}"))
    }
}
