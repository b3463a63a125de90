//! `JsonBody`: a request body read with the 64 KiB limit, parsed once the
//! handler asks for it.
//!
//! Text with U+0000 is refused here, once for every endpoint: PostgreSQL
//! cannot store it, and letting it reach a statement would be a 500.
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
    /// The body exactly as received (for request fingerprints).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses the body; an empty body reads as `{}` so that missing fields are
    /// reported one by one rather than as a parse error.
    pub fn parse(&self) -> Result<Value, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        let value: Value = serde_json::from_slice(&self.0)
            .map_err(|error| ApiError::BadJson(error.to_string()))?;
        refuse_nul_characters(&value)?;
        Ok(value)
    }
}

/// PostgreSQL text and `jsonb` cannot hold U+0000: a body that carries it
/// anywhere (a key or a string, however deep) is refused, naming the
/// top-level field, before it can reach a statement.
fn refuse_nul_characters(body: &Value) -> Result<(), ApiError> {
    fn carries_nul(value: &Value) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().any(carries_nul),
            Value::Object(fields) => fields
                .iter()
                .any(|(key, value)| key.contains('\0') || carries_nul(value)),
            _ => false,
        }
    }
    let Value::Object(fields) = body else {
        return match carries_nul(body) {
            true => Err(ApiError::field("non_field_errors", NUL_MESSAGE)),
            false => Ok(()),
        };
    };
    match fields
        .iter()
        .find(|(key, value)| key.contains('\0') || carries_nul(value))
    {
        Some((key, _)) => Err(ApiError::field(&key.replace('\0', ""), NUL_MESSAGE)),
        None => Ok(()),
    }
}

const NUL_MESSAGE: &str = "may not contain the NUL character (U+0000)";

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused_field(body: Value) -> Option<String> {
        match refuse_nul_characters(&body) {
            Err(ApiError::Validation(fields)) => fields.keys().next().cloned(),
            _ => None,
        }
    }

    #[test]
    fn a_nul_anywhere_is_refused_by_its_top_level_field() {
        assert_eq!(
            refused_field(json!({"name": "a\u{0}b"})).as_deref(),
            Some("name")
        );
        let deep = json!({"data": {"list": [{"k": "\u{0}"}]}});
        assert_eq!(refused_field(deep).as_deref(), Some("data"));
        assert_eq!(
            refused_field(json!({"data": {"\u{0}": 1}})).as_deref(),
            Some("data")
        );
        assert_eq!(refused_field(json!({"name": "fine", "n": 1})), None);
    }
}
