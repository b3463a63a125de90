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

async fn shopper_page() -> HttpResponse {
    html(SHOPPER_PAGE)
}

async fn admin_page() -> HttpResponse {
    html(ADMIN_PAGE)
}

fn html(page: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(page)
}
