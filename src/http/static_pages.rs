//! The web pages under `static/`, compiled into the binary so that it serves
//! them from any working directory: `/` (shopper) and `/admin/` (console).

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};

use super::resource;

const SHOPPER_PAGE: &str = include_str!("../../static/index.html");
const ADMIN_PAGE: &str = include_str!("../../static/admin/index.html");

/// Registers the page routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/").route(web::get().to(shopper_page)))
        .service(resource("/admin").route(web::get().to(admin_page)));
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

fn html(page: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(page)
}
