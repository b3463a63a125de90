//! `/api/outbox/`: what an operator does with emails the mailer gave up on
//! (a mail server that refused them for good, or a message that could not be
//! built): list them, and queue them again once the cause is fixed. Admin only.
//!
//! A requeued email is due at once with a fresh count of attempts, so it gets
//! the whole retry schedule again; the mailer is woken so it does not wait for
//! its next poll. An email that was sent meanwhile is never queued again.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::AdminCaller;
use super::body::JsonBody;
use super::error::ApiError;
use super::form::{id_list, Form, Presence};
use super::pagination::PageRequest;
use super::{resource, AppState};
use crate::db;

/// Registers the outbox routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/api/outbox/abandoned").route(web::get().to(list_abandoned_emails)))
        .service(resource("/api/outbox/requeue").route(web::post().to(requeue_emails)));
}

/// The answer to a requeue: the ids queued again, in id order.
#[derive(Serialize, ToSchema)]
pub struct Requeued {
    /// How many emails were queued again.
    pub requeued: usize,
    /// Their ids.
    pub ids: Vec<i64>,
}

#[utoipa::path(
    get,
    path = "/api/outbox/abandoned/",
    tag = "operations",
    summary = "Emails the mailer gave up on, newest first",
    params(crate::http::openapi::schemas::PageQuery),
    responses(
        (status = 200, description = "OK", body = crate::http::pagination::PageBody<crate::db::outbox::AbandonedEmail>),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::Paged,
    )
)]
async fn list_abandoned_emails(
    _admin: AdminCaller,
    page: PageRequest,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let listing = db::outbox::list_abandoned(&state.pool, page.window()).await?;
    page.respond(&request, listing)
}

#[utoipa::path(
    post,
    path = "/api/outbox/requeue/",
    tag = "operations",
    summary = "Queue abandoned emails again",
    description = "`{\"ids\": [...]}` queues those of the listed emails that are abandoned; an empty body (or no `ids`) queues every abandoned email. Ids that are not abandoned are skipped.",
    request_body(content = Option<crate::http::openapi::schemas::RequeueWrite>, content_type = "application/json"),
    responses(
        (status = 200, description = "The emails queued again", body = Requeued),
        crate::http::openapi::responses::Admin,
        crate::http::openapi::responses::JsonInput,
    )
)]
async fn requeue_emails(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let mut form = Form::new(body.parse()?)?;
    let ids = form.field("ids", Presence::Optional, id_list);
    form.finish()?;
    let ids = db::outbox::requeue_abandoned(&state.pool, ids.as_deref()).await?;
    if !ids.is_empty() {
        state.engine.wake_mailer();
    }
    Ok(HttpResponse::Ok().json(Requeued {
        requeued: ids.len(),
        ids,
    }))
}
