//! The published draw, public: `draw/` (the commitment from opening on;
//! after the finish the seed, the entries, their digest and the winners'
//! positions) and `draw/entries.txt` (the entries file, streamed from the
//! database as it is read, never built in memory). Builds from the database
//! are capped ([`super::draw_reads`]); a finished file carries its digest as
//! its `ETag` and is cached for good, and `If-None-Match` is answered 304.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{pin_mut, TryStreamExt};
use serde::Serialize;
use utoipa::ToSchema;

use super::draw_reads::{entity_tag, matches};
use super::error::ApiError;
use super::{resource, AppState};
use crate::db;
use crate::db::draws::{DrawOutcome, DrawRecord};
use crate::domain::raffle::CampaignStatus;

/// Up to this many entries are listed inline; beyond, only in the file.
pub const MAX_INLINE_ENTRIES: i64 = 10_000;

/// Registers the draw routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/api/raffles/campaigns/{id:\\d+}/draw").route(web::get().to(get_draw)))
        .service(
            resource("/api/raffles/campaigns/{id:\\d+}/draw/entries.txt")
                .route(web::get().to(get_draw_entries)),
        );
}

/// `GET draw/`: what anyone needs to check the draw.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrawDocument {
    pub campaign_id: i64,
    pub status: CampaignStatus,
    /// Lowercase hex SHA-256 of the seed's 32 bytes, from opening on.
    pub seed_commitment: String,
    /// After the finish: the seed's 32 bytes in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub seed: Option<String>,
    /// After the finish: hex SHA-256 of each candidate's normalised email, in
    /// ascending subscriber id; null beyond 10,000 entries (see `entries_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Option<Vec<String>>)]
    pub entries: Option<Option<Vec<String>>>,
    /// After the finish: how many entries the draw used.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub entry_count: Option<i64>,
    /// After the finish: hex SHA-256 of the entries joined with "\n".
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub entries_digest: Option<String>,
    /// After the finish: the entries file, whose SHA-256 is `entries_digest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub entries_url: Option<String>,
    /// After the finish: the prizes; there are `min(winners_count,
    /// entry_count)` winners.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub winners_count: Option<i32>,
    /// After the finish: the winners' positions in `entries`, in draw order.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub winners: Option<Vec<i64>>,
}

#[utoipa::path(
    get,
    path = "/api/raffles/campaigns/{id}/draw/",
    tag = "raffles",
    summary = "The draw's proof, for anyone to check",
    description = "From opening on: `seed_commitment`. After the finish also `seed`, `entries` (inline up to 10,000), `entry_count`, `entries_digest`, `entries_url` (built on PUBLIC_BASE_URL), `winners_count` and `winners` (`min(winners_count, entry_count)` positions). The rule: for each winner, `r = HMAC-SHA256(key = seed bytes, message = entries_digest + \":\" + str(counter))` as a big-endian integer, counter incremented; with `m` positions remaining, `r >= (2**256 // m) * m` is computed again, else `remaining.pop(r % m)` is the next winner.",
    security(()),
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "The draw", body = DrawDocument),
        (status = 404, description = "`not_found`: no such campaign, or not opened yet", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Public,
    )
)]
async fn get_draw(
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let campaign_id = path.into_inner();
    let draw = db::draws::find_draw(&state.pool, campaign_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let DrawRecord {
        status,
        seed_commitment,
        outcome,
    } = draw;
    let mut document = DrawDocument {
        campaign_id,
        status,
        seed_commitment: hex::encode(seed_commitment),
        seed: None,
        entries: None,
        entry_count: None,
        entries_digest: None,
        entries_url: None,
        winners_count: None,
        winners: None,
    };
    if let Some(outcome) = outcome {
        publish(&mut document, outcome, &state).await?;
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(document))
}

/// Adds what a finished draw publishes.
async fn publish(
    document: &mut DrawDocument,
    outcome: DrawOutcome,
    state: &AppState,
) -> Result<(), ApiError> {
    let inline = match outcome.entry_count <= MAX_INLINE_ENTRIES {
        true => Some(inline_entries(state, document.campaign_id).await?),
        false => None,
    };
    // From PUBLIC_BASE_URL, never from the request's Host header, which the
    // caller chooses.
    document.entries_url = Some(format!(
        "{}/api/raffles/campaigns/{}/draw/entries.txt",
        state.config.public_base_url.as_str().trim_end_matches('/'),
        document.campaign_id
    ));
    document.seed = Some(hex::encode(outcome.seed));
    document.entries = Some(inline);
    document.entry_count = Some(outcome.entry_count);
    document.entries_digest = Some(hex::encode(outcome.entries_digest));
    document.winners_count = Some(outcome.winners_count);
    document.winners = Some(outcome.winners);
    Ok(())
}

/// The entries as a list (a small draw only): the file, split at its newlines.
async fn inline_entries(state: &AppState, campaign_id: i64) -> Result<Vec<String>, ApiError> {
    let slot = state.draw_reads.start_build()?;
    let chunks = db::draws::stream_entries(&state.pool, campaign_id, slot);
    pin_mut!(chunks);
    let mut file = Vec::new();
    while let Some(chunk) = chunks.try_next().await? {
        file.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(file)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("entries are not hex")))?;
    Ok(text.split('\n').map(str::to_owned).collect())
}

#[utoipa::path(
    get,
    path = "/api/raffles/campaigns/{id}/draw/entries.txt",
    tag = "raffles",
    summary = "The draw's entries file",
    description = "After the finish: one lowercase hex SHA-256 per entry, in ascending subscriber id, joined with \"\\n\" (no trailing newline); its SHA-256 is the draw's `entries_digest`.",
    security(()),
    params(("id" = i64, Path, description = "The object's integer id")),
    responses(
        (status = 200, description = "The entries (`ETag`: the quoted `entries_digest`; cached for good)", content_type = "text/plain", body = String),
        (status = 304, description = "`If-None-Match` named the file's `ETag`: unchanged"),
        (status = 404, description = "`not_found`: no such campaign, or not drawn", body = crate::http::openapi::schemas::ErrorBody),
        crate::http::openapi::responses::Public,
    )
)]
async fn get_draw_entries(
    path: web::Path<i64>,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let campaign_id = path.into_inner();
    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok());
    let known = state.draw_reads.finished_digest(campaign_id);
    if let (Some(digest), Some(condition)) = (known, if_none_match) {
        if matches(condition, &entity_tag(&digest)) {
            return Ok(not_modified(&digest));
        }
    }
    let digest = match known {
        Some(digest) => digest,
        None => finished_digest(&state, campaign_id).await?,
    };
    if if_none_match.is_some_and(|condition| matches(condition, &entity_tag(&digest))) {
        return Ok(not_modified(&digest));
    }
    let slot = state.draw_reads.start_build()?;
    let chunks = db::draws::stream_entries(&state.pool, campaign_id, slot);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, IMMUTABLE))
        .insert_header((header::ETAG, entity_tag(&digest)))
        .streaming(chunks.map_err(ApiError::from)))
}

/// A finished draw's file never changes: cached for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The digest of a finished draw (remembered for the next conditional
/// request); 404 when the campaign is not drawn.
async fn finished_digest(state: &AppState, campaign_id: i64) -> Result<[u8; 32], ApiError> {
    let outcome = db::draws::find_draw(&state.pool, campaign_id)
        .await?
        .and_then(|draw| draw.outcome)
        .ok_or(ApiError::NotFound)?;
    state
        .draw_reads
        .remember(campaign_id, outcome.entries_digest);
    Ok(outcome.entries_digest)
}

fn not_modified(digest: &[u8; 32]) -> HttpResponse {
    HttpResponse::NotModified()
        .insert_header((header::CACHE_CONTROL, IMMUTABLE))
        .insert_header((header::ETAG, entity_tag(digest)))
        .finish()
}
