//! `/api/users/clients-profiles/`: shopper profiles.
//!
//! The admin has full CRUD over every profile. A shopper lists only their own
//! profile, gets 404 for anyone else's, and changes only their live location
//! through `me/`. Passwords are hashed off the executor; any account change
//! drops that account's cached credentials at once, on every instance.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::auth::{AdminCaller, Caller};
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{checked, id_list, nullable, number, present, text, Form, Presence};
use super::pagination::PageRequest;
use super::{resource, AppState};
use crate::db;
use crate::db::clients::{ClientChanges, NewClient, ProfileScope};
use crate::domain::entities::ClientProfile;
use crate::domain::secrets::hash_password;
use crate::domain::{EmailAddress, GeoPoint, Latitude, Longitude, Password, Username};

/// Registers the client profile routes (`me/` before `{id}/`).
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/api/users/clients-profiles")
                .route(web::get().to(list_profiles))
                .route(web::post().to(create_client)),
        )
        .service(
            resource("/api/users/clients-profiles/me")
                .route(web::get().to(get_my_profile))
                .route(web::patch().to(update_my_location)),
        )
        .service(
            resource("/api/users/clients-profiles/{id:\\d+}")
                .route(web::get().to(get_profile))
                .route(web::put().to(replace_client))
                .route(web::patch().to(update_client))
                .route(web::delete().to(delete_client)),
        );
}

#[utoipa::path(
    get,
    path = "/api/users/clients-profiles/",
    tag = "users",
    summary = "List client profiles",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::domain::entities::ClientProfile>),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_profiles(
    Caller(account): Caller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let scope = if account.is_admin {
        ProfileScope::All
    } else {
        ProfileScope::OwnedBy(account.id)
    };
    let listing = db::clients::list_profiles(&state.pool, scope, page.window()).await?;
    page.respond(&request, listing)
}

#[utoipa::path(
    get,
    path = "/api/users/clients-profiles/{id}/",
    tag = "users",
    summary = "Read a client profile",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::ClientProfile),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
    )
)]
async fn get_profile(
    Caller(account): Caller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let profile = db::clients::find_profile(&state.pool, path.into_inner())
        .await?
        .filter(|profile| account.is_admin || profile.user.id == account.id)
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(profile))
}

#[utoipa::path(
    get,
    path = "/api/users/clients-profiles/me/",
    tag = "users",
    summary = "The caller's own profile",
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::ClientProfile),
        (status = 404, description = "`not_found`: the caller has no client profile (the admin)", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
    )
)]
async fn get_my_profile(
    Caller(account): Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let profile = db::clients::find_profile_of_user(&state.pool, account.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(profile))
}

#[utoipa::path(
    patch,
    path = "/api/users/clients-profiles/me/",
    tag = "users",
    summary = "Set the caller's live location",
    request_body = crate::http::openapi::schemas::LocationWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::ClientProfile),
        (status = 404, description = "`not_found`: the caller has no client profile (the admin)", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Shopper,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn update_my_location(
    Caller(account): Caller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let current = db::clients::find_profile_of_user(&state.pool, account.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut form = Form::new(body.parse()?)?;
    let location = read_location(&mut form, Presence::Optional, Some(&current));
    form.finish()?;
    let Some(location) = location else {
        return Ok(HttpResponse::Ok().json(current));
    };
    let profile = state.engine.relocate(&current, location).await?;
    Ok(HttpResponse::Ok().json(profile))
}

#[utoipa::path(
    post,
    path = "/api/users/clients-profiles/",
    tag = "users",
    summary = "Create a client profile",
    request_body = crate::http::openapi::schemas::ClientWrite,
    responses(
        (status = 201, description = "Created", body = crate::domain::entities::ClientProfile),
        (status = 409, description = "`duplicate`: the username is taken", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn create_client(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let input = read_client(body.parse()?, Mode::Create, None)?;
    let password = present(input.password, "password")?;
    let new = NewClient {
        username: present(input.username, "username")?.as_str().to_owned(),
        password_hash: hash_off_executor(password).await?,
        email: input.email.flatten().map(|email| email.as_str().to_owned()),
        location: input.location.flatten(),
        segment_ids: input.segment_ids.unwrap_or_default(),
    };
    let profile = db::clients::insert_client(&state.pool, &new).await?;
    state.engine.publish_member(&profile).await?;
    Ok(HttpResponse::Created().json(profile))
}

#[utoipa::path(
    put,
    path = "/api/users/clients-profiles/{id}/",
    tag = "users",
    summary = "Replace a client profile",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::ClientWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::ClientProfile),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`duplicate`: the username is taken", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn replace_client(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_client(admin, path.into_inner(), state, body, Mode::Replace).await
}

#[utoipa::path(
    patch,
    path = "/api/users/clients-profiles/{id}/",
    tag = "users",
    summary = "Update some fields of a client profile",
    params(("id" = i64, Path, description = "The object's integer id")),
    request_body = crate::http::openapi::schemas::ClientWrite,
    responses(
        (status = 200, description = "OK", body = crate::domain::entities::ClientProfile),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        (status = 409, description = "`duplicate`: the username is taken", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn update_client(
    admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_client(admin, path.into_inner(), state, body, Mode::Patch).await
}

async fn write_client(
    _admin: AdminCaller,
    profile_id: i64,
    state: web::Data<AppState>,
    body: JsonBody,
    mode: Mode,
) -> Result<HttpResponse, ApiError> {
    let current = db::clients::find_profile(&state.pool, profile_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let input = read_client(body.parse()?, mode, Some(&current))?;
    let password_hash = match input.password {
        Some(password) => Some(hash_off_executor(password).await?),
        None => None,
    };
    let changes = ClientChanges {
        username: input.username.map(|name| name.as_str().to_owned()),
        password_hash,
        email: input
            .email
            .map(|email| email.map(|email| email.as_str().to_owned())),
        location: input.location,
        segment_ids: input.segment_ids,
    };
    let profile = db::clients::update_client(&state.pool, profile_id, &changes)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.credentials.forget_user(profile.user.id);
    state.engine.credentials_changed(profile.user.id);
    state.engine.publish_member(&profile).await?;
    Ok(HttpResponse::Ok().json(profile))
}

#[utoipa::path(
    delete,
    path = "/api/users/clients-profiles/{id}/",
    tag = "users",
    summary = "Delete a client profile",
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such object", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Admin,
    )
)]
async fn delete_client(
    _admin: AdminCaller,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user_id = db::clients::delete_client(&state.pool, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    state.credentials.forget_user(user_id);
    state.engine.credentials_changed(user_id);
    state.engine.forget_member(user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Which write a client body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Username and password required, the rest optional.
    Create,
    /// Every field but the password required.
    Replace,
    /// Any field.
    Patch,
}

/// A client body, read and checked. `Some(None)` clears a nullable field.
struct ClientInput {
    username: Option<Username>,
    password: Option<Password>,
    email: Option<Option<EmailAddress>>,
    location: Option<Option<GeoPoint>>,
    segment_ids: Option<Vec<i64>>,
}

fn read_client(
    body: Value,
    mode: Mode,
    current: Option<&ClientProfile>,
) -> Result<ClientInput, ApiError> {
    let required_unless_patch = if mode == Mode::Patch {
        Presence::Optional
    } else {
        Presence::Required
    };
    let password_presence = if mode == Mode::Create {
        Presence::Required
    } else {
        Presence::Optional
    };
    let mut form = Form::new(body)?;
    let username = form.field("username", required_unless_patch, |value| {
        checked(Username::parse(text(value)?))
    });
    let password = form.field("password", password_presence, |value| {
        checked(Password::parse(text(value)?))
    });
    let email = form.field("email", Presence::Optional, read_email);
    let location_presence = if mode == Mode::Replace {
        Presence::Required
    } else {
        Presence::Optional
    };
    let location = read_location(&mut form, location_presence, current);
    let segment_ids = form.field(
        "segment_ids",
        if mode == Mode::Replace {
            Presence::Required
        } else {
            Presence::Optional
        },
        id_list,
    );
    form.finish()?;
    Ok(ClientInput {
        username,
        password,
        email,
        location,
        segment_ids,
    })
}

/// `null` or `""` clears the address; anything else must be valid.
fn read_email(value: &Value) -> Result<Option<EmailAddress>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        other => checked(EmailAddress::parse(text(other)?)).map(Some),
    }
}

/// Reads `latitude`/`longitude` into a location change: `None` leaves it,
/// `Some(None)` forgets it. A coordinate given alone is paired with the stored
/// other one; the pair must end up both set or both null.
fn read_location(
    form: &mut Form,
    presence: Presence,
    current: Option<&ClientProfile>,
) -> Option<Option<GeoPoint>> {
    let latitude = form.field("latitude", presence, nullable(number));
    let longitude = form.field("longitude", presence, nullable(number));
    let unreadable = form.has_error("latitude") || form.has_error("longitude");
    if unreadable || (latitude.is_none() && longitude.is_none()) {
        return None;
    }
    let latitude = latitude.unwrap_or_else(|| current.and_then(|profile| profile.latitude));
    let longitude = longitude.unwrap_or_else(|| current.and_then(|profile| profile.longitude));
    match (latitude, longitude) {
        (None, None) => Some(None),
        (Some(latitude), Some(longitude)) => pair_location(form, latitude, longitude),
        (Some(_), None) => {
            form.error("longitude", UNPAIRED_LOCATION);
            None
        }
        (None, Some(_)) => {
            form.error("latitude", UNPAIRED_LOCATION);
            None
        }
    }
}

const UNPAIRED_LOCATION: &str = "latitude and longitude must both be numbers or both be null";

fn pair_location(form: &mut Form, latitude: f64, longitude: f64) -> Option<Option<GeoPoint>> {
    match (Latitude::parse(latitude), Longitude::parse(longitude)) {
        (Ok(latitude), Ok(longitude)) => Some(Some(GeoPoint::new(latitude, longitude))),
        (latitude, longitude) => {
            if let Err(error) = latitude {
                form.error("latitude", error.to_string());
            }
            if let Err(error) = longitude {
                form.error("longitude", error.to_string());
            }
            None
        }
    }
}

async fn hash_off_executor(password: Password) -> Result<String, ApiError> {
    web::block(move || hash_password(&password))
        .await?
        .map_err(|error| ApiError::Internal(error.into()))
}
