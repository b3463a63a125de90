//! `GET /api/docs/`: Swagger UI rendering `/api/schema/`, every file of it
//! compiled into the binary (`utoipa-swagger-ui`, vendored: no CDN, no
//! download at build time), so the page works offline.
//!
//! The page is served at `/api/docs` with or without its slash (the
//! `NormalizePath` of the route table trims it before routing), so its
//! relative asset links are anchored by a `<base href="/api/docs/">`.

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa_swagger_ui::Config;

use super::error::ApiError;
use super::resource;

/// Where the page and its assets live.
const DOCS_PREFIX: &str = "/api/docs/";

/// Registers the page and its assets.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/api/docs").route(web::get().to(show_docs_page)))
        .service(resource("/api/docs/{file}").route(web::get().to(show_docs_asset)));
}

/// The Swagger UI page.
#[utoipa::path(
    get,
    path = "/api/docs/",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Swagger UI", content_type = "text/html", body = String))
)]
pub async fn show_docs_page() -> Result<HttpResponse, ApiError> {
    let page = docs_file("index.html")?;
    let html = String::from_utf8_lossy(&page.bytes).replacen(
        "<head>",
        &format!("<head>\n    <base href=\"{DOCS_PREFIX}\">"),
        1,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// A file of the page (scripts, styles, icons).
#[utoipa::path(
    get,
    path = "/api/docs/{file}",
    tag = "operations",
    security(()),
    params(("file" = String, Path, description = "A Swagger UI file, e.g. `swagger-ui.css`")),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = String),
        (status = 404, description = "`not_found`: no such file", body = super::openapi::schemas::ErrorBody),
    )
)]
pub async fn show_docs_asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let file = docs_file(&file)?;
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(file.bytes.into_owned()))
}

fn docs_file(name: &str) -> Result<utoipa_swagger_ui::SwaggerFile<'static>, ApiError> {
    match utoipa_swagger_ui::serve(name, config()) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(ApiError::NotFound),
        Err(error) => Err(ApiError::Internal(anyhow::anyhow!(
            "swagger ui file {name}: {error}"
        ))),
    }
}

fn config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(Config::from("/api/schema/")))
        .clone()
}
