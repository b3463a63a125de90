//! Who is calling: the `Caller` and `AdminCaller` extractors.
//!
//! Three spellings are accepted, as API.md says: `Authorization: Bearer <token>`,
//! `Token <token>` (the original's) and HTTP Basic. Verified credentials are
//! remembered briefly in the [`CredentialCache`](super::credential_cache), so a
//! Basic client does not pay an argon2 hash per request. A missing or wrong
//! credential is 401; an authenticated non-admin on an admin route is 403.
//!
//! Every password check (a Basic cache miss, `POST /api/auth/token/`) passes
//! the [`LoginThrottle`](super::login_throttle) first (429 without hashing once
//! a username or an address has failed too often), then takes a place in the
//! [`PasswordGate`](super::password_gate) (503 at once when it is full) before
//! its database lookup and hash. Token and cached-Basic requests skip both.

use std::net::IpAddr;
use std::time::Instant;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use base64::Engine;
use futures_util::future::LocalBoxFuture;

use super::error::ApiError;
use super::AppState;
use crate::db;
use crate::domain::entities::AccountSummary;
use crate::domain::secrets::{hash_token, verify_password};

/// Any authenticated account (a shopper or the admin).
#[derive(Debug, Clone)]
pub struct Caller(pub AccountSummary);

/// The admin, and only the admin.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub AccountSummary);

/// A credential as presented.
#[derive(Debug)]
pub enum Credentials {
    /// A token from `Bearer`, `Token` or the WebSocket `?token=`.
    Token(String),
    /// A username and password from HTTP Basic, and the client address
    /// that sent them, for the sign-in throttle.
    Basic {
        username: String,
        password: String,
        client: Option<IpAddr>,
    },
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Caller, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let credentials = credentials_from_header(request);
        Box::pin(async move {
            let state = state.ok_or_else(|| anyhow::anyhow!("AppState is not registered"))?;
            let credentials = credentials?.ok_or(ApiError::NotAuthenticated(
                "Authentication credentials were not provided.",
            ))?;
            authenticate(&state, credentials).await.map(Caller)
        })
    }
}

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<AdminCaller, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(request, payload);
        Box::pin(async move {
            let Caller(account) = caller.await?;
            if account.is_admin {
                Ok(AdminCaller(account))
            } else {
                Err(ApiError::PermissionDenied)
            }
        })
    }
}

/// Reads the `Authorization` header; `Ok(None)` when there is none.
pub fn credentials_from_header(request: &HttpRequest) -> Result<Option<Credentials>, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = ApiError::NotAuthenticated("Malformed Authorization header.");
    let text = value.to_str().map_err(|_| malformed)?;
    let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "token" if !rest.is_empty() => Ok(Some(Credentials::Token(rest.to_owned()))),
        "basic" => {
            let client = super::client_address::client_address(request);
            decode_basic(rest, client).map(Some)
        }
        _ => Err(ApiError::NotAuthenticated(
            "Malformed Authorization header.",
        )),
    }
}

fn decode_basic(encoded: &str, client: Option<IpAddr>) -> Result<Credentials, ApiError> {
    let malformed = || ApiError::NotAuthenticated("Malformed Basic credentials.");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let (username, password) = text.split_once(':').ok_or_else(malformed)?;
    Ok(Credentials::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
        client,
    })
}

/// Resolves credentials to an account, from the cache when fresh.
pub async fn authenticate(
    state: &AppState,
    credentials: Credentials,
) -> Result<AccountSummary, ApiError> {
    let fingerprint = match &credentials {
        Credentials::Token(token) => state.credentials.fingerprint("token", &[token]),
        Credentials::Basic {
            username, password, ..
        } => state
            .credentials
            .fingerprint("basic", &[username, password]),
    };
    if let Some(account) = state.credentials.get(&fingerprint) {
        return Ok(account);
    }
    let checked_at = Instant::now();
    let account = match credentials {
        Credentials::Token(token) => {
            db::users::find_token_account(&state.pool, &hash_token(&token))
                .await?
                .ok_or(ApiError::NotAuthenticated("Invalid token."))?
        }
        Credentials::Basic {
            username,
            password,
            client,
        } => verify_login(state, &username, password, client)
            .await?
            .ok_or(ApiError::NotAuthenticated("Invalid username/password."))?,
    };
    state
        .credentials
        .remember(fingerprint, account.clone(), checked_at);
    Ok(account)
}

/// Checks a username and password sent from `client`; `None` when either is
/// wrong. Throttled and gated as the module doc says; the hash runs on the
/// blocking pool, and an unknown username costs as much as a known one.
pub async fn verify_login(
    state: &AppState,
    username: &str,
    password: String,
    client: Option<IpAddr>,
) -> Result<Option<AccountSummary>, ApiError> {
    if let Some(throttle) = &state.login_throttle {
        throttle.check(username, client, Instant::now())?;
    }
    let admission = state.password_gate.admit()?;
    let login = db::users::find_login(&state.pool, username).await?;
    let stored_hash = login
        .as_ref()
        .map(|login| login.password_hash.clone())
        .unwrap_or_else(|| state.decoy_password_hash.clone());
    let matches = admission
        .run(move || verify_password(&password, &stored_hash))
        .await?;
    if !matches {
        if let Some(throttle) = &state.login_throttle {
            throttle.record_failure(username, client, Instant::now());
        }
    }
    Ok(login.filter(|_| matches).map(|login| login.account))
}
