//! `Form`: reads the fields of a JSON object one by one, collecting every
//! problem so a client sees all of them at once (`validation_error`).
//!
//! Each field is taken out of the object as it is read; whatever is left at
//! [`Form::finish`] was not writable, and is refused by name rather than
//! silently ignored. Value readers (`text`, `number`, ...) check JSON types;
//! domain `parse` functions check meaning.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::{ApiError, FieldErrors};
use crate::domain::Money;

/// The fields of one request body being read.
pub struct Form {
    fields: Map<String, Value>,
    errors: FieldErrors,
}

/// Whether a field must be present (create, replace) or may be left out (patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
}

impl Form {
    /// Starts reading a body, which must be a JSON object.
    pub fn new(body: Value) -> Result<Form, ApiError> {
        match body {
            Value::Object(fields) => Ok(Form {
                fields,
                errors: FieldErrors::new(),
            }),
            _ => Err(ApiError::field(
                "non_field_errors",
                "expected a JSON object",
            )),
        }
    }

    /// Reads `name` with `parse`; records an error when it is required but
    /// absent or present but invalid.
    pub fn field<T>(
        &mut self,
        name: &str,
        presence: Presence,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        match self.fields.remove(name) {
            None => {
                if presence == Presence::Required {
                    self.error(name, "this field is required");
                }
                None
            }
            Some(value) => match parse(&value) {
                Ok(parsed) => Some(parsed),
                Err(message) => {
                    self.error(name, message);
                    None
                }
            },
        }
    }

    /// Records a problem that involves a field after it was read.
    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        self.errors
            .entry(name.to_owned())
            .or_default()
            .push(message.into());
    }

    /// True when a problem was already recorded for `name`.
    pub fn has_error(&self, name: &str) -> bool {
        self.errors.contains_key(name)
    }

    /// Ends reading: leftover fields are refused, and any error fails the request.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let leftovers: Vec<String> = self.fields.keys().cloned().collect();
        for name in leftovers {
            self.error(&name, "unknown or read-only field");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// A present field that a successful [`Form::finish`] guarantees.
pub fn present<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("validated field {name} missing")))
}

/// Turns a domain error into a field message.
pub fn checked<T, E: Display>(result: Result<T, E>) -> Result<T, String> {
    result.map_err(|error| error.to_string())
}

/// A JSON string.
pub fn text(value: &Value) -> Result<&str, String> {
    match value {
        Value::String(text) => Ok(text),
        Value::Null => Err("may not be null".into()),
        _ => Err("must be a string".into()),
    }
}

/// A JSON number (not a string of digits).
pub fn number(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(number) => number.as_f64().ok_or_else(|| "must be a number".into()),
        Value::Null => Err("may not be null".into()),
        _ => Err("must be a number".into()),
    }
}

/// A JSON integer id.
pub fn id(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .filter(|id| *id > 0)
            .ok_or_else(|| "must be a positive integer id".into()),
        Value::Null => Err("may not be null".into()),
        _ => Err("must be a positive integer id".into()),
    }
}

/// A JSON array of integer ids, duplicates removed, order kept.
pub fn id_list(value: &Value) -> Result<Vec<i64>, String> {
    let Value::Array(items) = value else {
        return Err("must be a list of ids".into());
    };
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = id(item).map_err(|_| "must be a list of positive integer ids".to_string())?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// An RFC 3339 time with an offset (`2026-11-23T17:00:00-06:00`), in UTC.
pub fn timestamp(value: &Value) -> Result<DateTime<Utc>, String> {
    let text = text(value)?;
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 time with an offset, such as 2026-11-23T17:00:00Z".into())
}

/// A JSON integer.
pub fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) => number.as_i64().ok_or_else(|| "must be an integer".into()),
        Value::Null => Err("may not be null".into()),
        _ => Err("must be an integer".into()),
    }
}

/// A boolean.
pub fn boolean(value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| "must be true or false".into())
}

/// Money as a decimal string (`"499.00"`) or a JSON number (`499`).
pub fn money(value: &Value) -> Result<Money, String> {
    match value {
        Value::String(text) => checked(Money::parse(text)),
        Value::Number(number) => checked(Money::parse(&number.to_string())),
        Value::Null => Err("may not be null".into()),
        _ => Err("must be a decimal string or a number".into()),
    }
}

/// `null` or what `parse` reads.
pub fn nullable<T>(
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> impl FnOnce(&Value) -> Result<Option<T>, String> {
    move |value| match value {
        Value::Null => Ok(None),
        other => parse(other).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_problem_is_reported_together() {
        let mut form = Form::new(json!({"a": "x", "extra": 1})).unwrap();
        assert!(form.field("a", Presence::Required, number).is_none());
        assert!(form.field("b", Presence::Required, number).is_none());
        let Err(ApiError::Validation(fields)) = form.finish() else {
            panic!("expected a validation error");
        };
        assert_eq!(fields["a"], vec!["must be a number"]);
        assert_eq!(fields["b"], vec!["this field is required"]);
        assert_eq!(fields["extra"], vec!["unknown or read-only field"]);
    }

    #[test]
    fn an_optional_absent_field_is_no_error() {
        let mut form = Form::new(json!({})).unwrap();
        assert!(form.field("a", Presence::Optional, number).is_none());
        assert!(form.finish().is_ok());
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        assert!(matches!(
            Form::new(json!([1, 2])),
            Err(ApiError::Validation(_))
        ));
    }

    #[test]
    fn money_reads_strings_and_numbers() {
        assert_eq!(money(&json!("499.00")).unwrap().to_string(), "499.00");
        assert_eq!(money(&json!(12.5)).unwrap().to_string(), "12.50");
        assert!(money(&json!(true)).is_err());
        assert!(money(&json!(-1)).is_err());
    }

    #[test]
    fn id_lists_drop_duplicates_and_refuse_non_ids() {
        assert_eq!(id_list(&json!([2, 1, 2])).unwrap(), vec![2, 1]);
        assert!(id_list(&json!([1, "2"])).is_err());
        assert!(id_list(&json!([0])).is_err());
        assert!(id_list(&json!(1)).is_err());
    }

    #[test]
    fn times_need_an_offset_and_come_back_in_utc() {
        let time = timestamp(&json!("2026-11-23T11:00:00-06:00")).unwrap();
        assert_eq!(time.to_rfc3339(), "2026-11-23T17:00:00+00:00");
        assert!(timestamp(&json!("2026-11-23T17:00:00")).is_err());
        assert!(timestamp(&json!("tomorrow")).is_err());
    }

    #[test]
    fn nullable_reads_null_as_none() {
        assert_eq!(nullable(number)(&json!(null)).unwrap(), None);
        assert_eq!(nullable(number)(&json!(1.5)).unwrap(), Some(1.5));
    }
}
