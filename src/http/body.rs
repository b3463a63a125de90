//! `JsonBody`: a request body read with the 64 KiB limit, parsed once the
//! handler asks for it.
//!
//! Reading and parsing are split on purpose: extractors run concurrently, and
//! a caller must learn they are unauthenticated (401) before being told their
//! JSON is malformed (400), as the original did.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use bytes::BytesMut;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde_json::Value;

use super::error::ApiError;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The raw bytes of a JSON request body (at most [`MAX_BODY_BYTES`]).
pub struct JsonBody(bytes::Bytes);

impl JsonBody {
    /// Parses the body; an empty body reads as `{}` so that missing fields are
    /// reported one by one rather than as a parse error.
    pub fn parse(&self) -> Result<Value, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.0).map_err(|error| ApiError::BadJson(error.to_string()))
    }
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<JsonBody, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared = declared_length(request);
        let is_json = has_json_content_type(request);
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
                return Err(ApiError::PayloadTooLarge);
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|error| ApiError::BadJson(error.to_string()))?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            if !is_json && !body.is_empty() {
                return Err(ApiError::UnsupportedMediaType);
            }
            Ok(JsonBody(body.freeze()))
        })
    }
}

fn declared_length(request: &HttpRequest) -> Option<usize> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
}

/// JSON, `+json` types, or no declared type at all (curl's `-d` aside, most
/// clients label JSON correctly; an unlabelled body is given the benefit).
fn has_json_content_type(request: &HttpRequest) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}
