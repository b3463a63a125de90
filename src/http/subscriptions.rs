//! The public raffle endpoints: `add_subscriber/` (an address enters a
//! campaign) and `verify_subscriber/` (the link from the confirmation email).
//!
//! Entries are rate limited per client address before anything else is
//! looked at, then go to the campaign's actor, which refuses duplicates from
//! memory and answers once the entry and its email are committed. The
//! verification link answers a small HTML page to a browser and JSON to
//! everything else; the page sends no referrer, so the code in its URL does
//! not leak to whatever the visitor opens next.

use actix_web::http::header::{self, Accept, Header};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use url::form_urlencoded;

use super::body::JsonBody;
use super::error::ApiError;
use super::form::{checked, text, Form, Presence};
use super::idempotency::{respond_once, CallerKey};
use super::{resource, AppState};
use crate::db;
use crate::db::subscribers::Verification;
use crate::domain::raffle::{parse_data, CampaignStatus};
use crate::domain::secrets::hash_token;
use crate::domain::EmailAddress;

/// Longer than any code the service issues; longer ones are not looked up.
const MAX_CODE_CHARS: usize = 128;

/// Registers the public raffle routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/api/raffles/campaigns/{id:\\d+}/add_subscriber")
                .route(web::post().to(add_subscriber)),
        )
        .service(
            resource("/api/raffles/verify_subscriber").route(web::get().to(verify_subscriber)),
        );
}

#[utoipa::path(
    post,
    path = "/api/raffles/campaigns/{id}/add_subscriber/",
    tag = "raffles",
    summary = "Enter an email address in a campaign",
    security(()),
    params(("id" = i64, Path, description = "The object's integer id"), ("Idempotency-Key" = Option<String>, Header, description = "1..200 printable ASCII characters: a repeat within 24 hours answers the first answer again")),
    request_body = crate::http::openapi::schemas::SubscriberWrite,
    responses(
        (status = 201, description = "Entered; a verification email is queued", body = crate::domain::raffle::Entry),
        (status = 404, description = "`not_found`: no such campaign", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`already_subscribed`; `campaign_closed`", body = crate::http::openapi::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: too many entries from this address (`Retry-After`)", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Public,
        crate::http::openapi::responses::JsonInput,
        crate::http::openapi::responses::Idempotent,
    )
)]
async fn add_subscriber(
    path: web::Path<i64>,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let peer = super::client_address::client_address(&request);
    if let (Some(limit), Some(peer)) = (&state.subscribe_limit, peer) {
        limit.check(peer)?;
    }
    let (email, data) = read_entry(body.parse()?)?;
    let work = subscribe(state.clone(), path.into_inner(), email, data);
    respond_once(
        &state,
        &request,
        CallerKey::Address(peer),
        body.bytes(),
        work,
    )
    .await
}

/// Enters the address in the campaign (loading its actor if need be).
async fn subscribe(
    state: web::Data<AppState>,
    campaign_id: i64,
    email: String,
    data: Value,
) -> Result<HttpResponse, ApiError> {
    let entry = state.engine.enter_raffle(campaign_id, email, data).await?;
    Ok(HttpResponse::Created().json(entry))
}

/// Reads `{"email", "data"}`: the address normalised (trimmed, lower-cased),
/// `data` an object of at most 4 KiB (absent or null: `{}`).
fn read_entry(body: Value) -> Result<(String, Value), ApiError> {
    let mut form = Form::new(body)?;
    let email = form.field("email", Presence::Required, |value| {
        checked(EmailAddress::parse(text(value)?)).map(|email| email.normalized())
    });
    let data = form.field("data", Presence::Optional, |value| match value {
        Value::Null => Ok(json!({})),
        other => checked(parse_data(other)),
    });
    form.finish()?;
    let email = email.ok_or_else(|| ApiError::field("email", "this field is required"))?;
    Ok((email, data.unwrap_or_else(|| json!({}))))
}

#[utoipa::path(
    get,
    path = "/api/raffles/verify_subscriber/",
    tag = "raffles",
    summary = "Confirm an address (the link in the email)",
    security(()),
    params(("code" = Option<String>, Query, description = "The code from the email")),
    responses(
        (status = 200, description = "Verified (repeats are harmless); an HTML page when `Accept` names `text/html`", content((crate::http::openapi::schemas::VerifyAnswer = "application/json"), (String = "text/html"))),
        (status = 404, description = "`not_found`: unknown code (an HTML page when `Accept` names `text/html`)", content((crate::http::openapi::schemas::ErrorBody = "application/json"), (String = "text/html"))),
        crate::http::openapi::responses::Public,
    )
)]
async fn verify_subscriber(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let wants_html = names_html(&request);
    let code = form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(name, _)| name == "code")
        .map(|(_, code)| code.trim().to_owned())
        .filter(|code| !code.is_empty() && code.len() <= MAX_CODE_CHARS);
    let verification = match code {
        Some(code) => db::subscribers::mark_verified(&state.pool, &hash_token(&code)).await?,
        None => None,
    };
    let Some(verification) = verification else {
        return match wants_html {
            true => Ok(page(HttpResponse::NotFound(), &unknown_code_page())),
            false => Err(ApiError::NotFound),
        };
    };
    if verification.newly_verified {
        state.engine.campaign_counts_changed(
            verification.campaign_id,
            verification.subscriber_count,
            verification.verified_count,
        );
    }
    if wants_html {
        return Ok(page(HttpResponse::Ok(), &verified_page(&verification)));
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"verified": true, "campaign_id": verification.campaign_id})))
}

/// True when the `Accept` header names `text/html`.
fn names_html(request: &HttpRequest) -> bool {
    Accept::parse(request)
        .map(|accept| {
            accept
                .iter()
                .any(|item| item.item.essence_str() == actix_web::mime::TEXT_HTML.essence_str())
        })
        .unwrap_or(false)
}

fn page(mut response: actix_web::HttpResponseBuilder, html: &str) -> HttpResponse {
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(html.to_owned())
}

fn verified_page(verification: &Verification) -> String {
    let name = html_escape::encode_text(&verification.campaign_name);
    let message = match verification.campaign_status {
        CampaignStatus::Open => {
            format!("Your entry to <strong>{name}</strong> is confirmed. Good luck in the draw!")
        }
        CampaignStatus::Finished => format!(
            "Your address is confirmed, but the draw for <strong>{name}</strong> has already \
             taken place."
        ),
        CampaignStatus::Cancelled => format!(
            "Your address is confirmed, but <strong>{name}</strong> was cancelled: there will \
             be no draw."
        ),
        // Nobody enters a draft; a link to one can only be very old or forged.
        CampaignStatus::Draft => format!("Your address is confirmed for <strong>{name}</strong>."),
    };
    html_page("Entry confirmed", &message)
}

fn unknown_code_page() -> String {
    html_page(
        "Link not recognised",
        "This confirmation link is not valid. Check that you opened the whole link from the email.",
    )
}

fn html_page(title: &str, message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\n<body style=\"font-family: sans-serif; max-width: 36em; \
         margin: 3em auto; padding: 0 1em\">\n<h1>{title}</h1>\n<p>{message}</p>\n</body></html>\n"
    )
}
