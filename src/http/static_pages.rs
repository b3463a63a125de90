//! The web clients under `static/`, compiled into the binary so that it serves
//! them from any working directory and offline: `/` (shopper), `/admin/`
//! (console) and their scripts and style sheet under `/static/`.
//!
//! The assets are a fixed table rather than a directory walk: nothing outside
//! it can ever be served, and a missing file fails the build, not a request.

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpResponse};

use super::error::ApiError;
use super::resource;

const SHOPPER_PAGE: &str = include_str!("../../static/index.html");
const ADMIN_PAGE: &str = include_str!("../../static/admin/index.html");

/// `(path under /static/, content type, body)`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("css/app.css", CSS, include_str!("../../static/css/app.css")),
    ("js/api.js", JS, include_str!("../../static/js/api.js")),
    (
        "js/socket.js",
        JS,
        include_str!("../../static/js/socket.js"),
    ),
    ("js/dom.js", JS, include_str!("../../static/js/dom.js")),
    ("js/map.js", JS, include_str!("../../static/js/map.js")),
    (
        "js/shopper.js",
        JS,
        include_str!("../../static/js/shopper.js"),
    ),
    ("js/admin.js", JS, include_str!("../../static/js/admin.js")),
    (
        "js/admin-resources.js",
        JS,
        include_str!("../../static/js/admin-resources.js"),
    ),
    (
        "js/admin-live.js",
        JS,
        include_str!("../../static/js/admin-live.js"),
    ),
];
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Registers the page and asset routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/").route(web::get().to(shopper_page)))
        .service(resource("/admin").route(web::get().to(admin_page)))
        .service(resource("/static/{path:.*}").route(web::get().to(static_asset)));
}

#[utoipa::path(
    get,
    path = "/",
    tag = "pages",
    summary = "The shopper web client",
    security(()),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html", body = String),
    )
)]
async fn shopper_page() -> HttpResponse {
    html(SHOPPER_PAGE)
}

#[utoipa::path(
    get,
    path = "/admin/",
    tag = "pages",
    summary = "The admin web console",
    security(()),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html", body = String),
    )
)]
async fn admin_page() -> HttpResponse {
    html(ADMIN_PAGE)
}

#[utoipa::path(
    get,
    path = "/static/{path}",
    tag = "pages",
    summary = "A script, style sheet or image of the web clients",
    security(()),
    params(("path" = String, Path, description = "The asset's path under static/, e.g. `js/shopper.js`")),
    responses(
        (status = 200, description = "The asset", content_type = "application/octet-stream", body = String),
        (status = 404, description = "`not_found`: no such asset", body = crate::http::openapi::schemas::ErrorBody),
    )
)]
async fn static_asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == path.as_str())
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(*body))
}

fn html(page: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(page)
}
