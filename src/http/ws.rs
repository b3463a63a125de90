//! `GET /ws/`: the WebSocket upgrade. The token comes from `?token=` or the
//! `Authorization` header; without a valid one the answer is a 401 before any
//! upgrade.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use url::form_urlencoded;

use super::auth::{authenticate, credentials_from_header, Credentials};
use super::error::ApiError;
use super::{resource, AppState};
use crate::actors::ws_session::WsSession;

/// Registers the upgrade route.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(resource("/ws").route(web::get().to(open_session)));
}

#[utoipa::path(
    get,
    path = "/ws/",
    tag = "realtime",
    summary = "Open the WebSocket (see API.md for the frames)",
    security(("query_token" = []), ("bearer" = []), ("token" = []), ("basic" = [])),
    params(("token" = Option<String>, Query, description = "A token, instead of the Authorization header")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "`validation_error`: not a WebSocket upgrade request", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
    )
)]
async fn open_session(
    request: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let query_token = form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, token)| Credentials::Token(token.into_owned()));
    let credentials = match query_token {
        Some(token) => Some(token),
        None => credentials_from_header(&request)?,
    };
    let credentials = credentials.ok_or(ApiError::NotAuthenticated(
        "Give a token as ?token= or in the Authorization header.",
    ))?;
    let account = authenticate(&state, credentials).await?;
    if let Err(refused) = ws::handshake(&request) {
        // actix answers a bad handshake with a bare status; ours is the JSON error shape.
        return Err(ApiError::field("upgrade", refused.to_string()).into());
    }
    ws::start(
        WsSession::new(account.id, account.is_admin, state.engine.clone()),
        &request,
        stream,
    )
}
