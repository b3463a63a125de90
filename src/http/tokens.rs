//! `POST /api/auth/token/`: trades a username and password for a new token.
//!
//! The check goes through the sign-in throttle and the password gate (see
//! [`verify_login`]), keyed by the client address (`client_address`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::auth::verify_login;
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{present, text, Form, Presence};
use super::{resource, AppState};
use crate::db;
use crate::domain::secrets::issue_token;

/// Registers the token endpoint.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(resource("/api/auth/token").route(web::post().to(create_token)));
}

#[tracing::instrument(skip_all)]
#[utoipa::path(
    post,
    path = "/api/auth/token/",
    tag = "auth",
    summary = "Trade a username and password for a token",
    security(()),
    request_body = crate::http::openapi::schemas::TokenRequest,
    responses(
        (status = 200, description = "A new token", body = crate::http::openapi::schemas::TokenAnswer),
        (status = 401, description = "`invalid_credentials`: wrong username or password", body = crate::http::openapi::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed sign-ins (`Retry-After`)", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Public,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn create_token(
    request: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let mut form = Form::new(body.parse()?)?;
    let username = form.field("username", Presence::Required, |value| {
        text(value).map(str::to_owned)
    });
    let password = form.field("password", Presence::Required, |value| {
        text(value).map(str::to_owned)
    });
    form.finish()?;
    let (username, password) = (
        present(username, "username")?,
        present(password, "password")?,
    );
    let client = super::client_address::client_address(&request);
    let account = verify_login(&state, username.trim(), password, client)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    let token = issue_token();
    db::users::insert_token(&state.pool, account.id, &token.hash).await?;
    Ok(HttpResponse::Ok().json(json!({"token": token.text, "user": account})))
}
