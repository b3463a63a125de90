//! Reading a campaign body (create, replace, patch): each field checked by
//! its domain rule, every problem reported at once.
//!
//! `status` is read only on create (`draft` or `open`); afterwards status
//! moves only through `open/`, `cancel/` and `finish_campaign/`, so a body
//! that carries it is refused like any read-only field. `winners_count`,
//! `opens_at` and `closes_at` are optional everywhere: a replace that leaves
//! them out keeps them, so clients that predate them keep working.

use serde_json::Value;

use super::error::ApiError;
use super::form::{checked, integer, nullable, text, timestamp, Form, Presence};
use crate::db::campaigns::CampaignFields;
use crate::domain::raffle::{
    parse_description, parse_subject, parse_template, CampaignStatus, MAX_WINNERS,
};
use crate::domain::{EmailAddress, Name};

/// A create body: the fields, and whether the campaign opens at once.
pub struct NewCampaign {
    pub fields: CampaignFields,
    pub open_now: bool,
}

/// Reads a create body: every text field but `description` is required;
/// `status` is `open` (the default) or `draft`; only a draft takes `opens_at`.
pub fn read_new_campaign(body: Value) -> Result<NewCampaign, ApiError> {
    let mut form = Form::new(body)?;
    let status = form.field(
        "status",
        Presence::Optional,
        |value| match CampaignStatus::from_stored(text(value)?) {
            Some(status @ (CampaignStatus::Draft | CampaignStatus::Open)) => Ok(status),
            _ => Err("must be \"draft\" or \"open\"".to_owned()),
        },
    );
    let mut fields = read_fields(&mut form, Presence::Required);
    let open_now = status.unwrap_or(CampaignStatus::Open) == CampaignStatus::Open;
    if open_now && matches!(fields.opens_at, Some(Some(_))) {
        form.error(
            "opens_at",
            "only a draft opens later: create it with \"status\": \"draft\"",
        );
    }
    check_window(&mut form, &fields);
    form.finish()?;
    // Create sets every text field: a description left out is empty.
    fields.description.get_or_insert_with(String::new);
    Ok(NewCampaign { fields, open_now })
}

/// Reads a replace (every text field but `description` required) or patch
/// (any field) body.
pub fn read_campaign_edit(body: Value, presence: Presence) -> Result<CampaignFields, ApiError> {
    let mut form = Form::new(body)?;
    let mut fields = read_fields(&mut form, presence);
    check_window(&mut form, &fields);
    form.finish()?;
    // Replace sets every text field: a description left out is empty.
    if presence == Presence::Required {
        fields.description.get_or_insert_with(String::new);
    }
    Ok(fields)
}

fn read_fields(form: &mut Form, presence: Presence) -> CampaignFields {
    let name = form.field("name", presence, |value| {
        checked(Name::parse(text(value)?)).map(|name| name.as_str().to_owned())
    });
    let description = form.field("description", Presence::Optional, |value| {
        checked(parse_description(text(value)?))
    });
    let admin_email = form.field("admin_email", presence, |value| {
        checked(EmailAddress::parse(text(value)?)).map(|email| email.as_str().to_owned())
    });
    let email_subject = form.field("email_subject", presence, |value| {
        checked(parse_subject(text(value)?))
    });
    let email_template = form.field("email_template", presence, |value| {
        checked(parse_template(text(value)?))
    });
    let winners_count = form.field("winners_count", Presence::Optional, winners_count);
    let opens_at = form.field("opens_at", Presence::Optional, nullable(timestamp));
    let closes_at = form.field("closes_at", Presence::Optional, nullable(timestamp));
    CampaignFields {
        name,
        description,
        admin_email,
        email_subject,
        email_template,
        winners_count,
        opens_at,
        closes_at,
    }
}

fn winners_count(value: &Value) -> Result<i32, String> {
    let count = integer(value)?;
    match i32::try_from(count) {
        Ok(count) if (1..=MAX_WINNERS).contains(&i64::from(count)) => Ok(count),
        _ => Err(format!("must be between 1 and {MAX_WINNERS}")),
    }
}

/// Both times in one body: the campaign must close after it opens. (Against
/// the stored times, the database module checks the same under the lock.)
fn check_window(form: &mut Form, fields: &CampaignFields) {
    if let (Some(Some(opens)), Some(Some(closes))) = (fields.opens_at, fields.closes_at) {
        if closes <= opens {
            form.error("closes_at", "must be later than opens_at");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(extra: Value) -> Value {
        let mut body = json!({
            "name": "Valentine stay",
            "admin_email": "boss@example.com",
            "email_subject": "Confirm",
            "email_template": "Go: {{verify_url}}",
        });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        body
    }

    fn field_errors(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation(fields) => fields.keys().cloned().collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_new_campaign_opens_at_once_unless_it_is_a_draft() {
        assert!(read_new_campaign(body(json!({}))).unwrap().open_now);
        let draft = read_new_campaign(body(json!({"status": "draft"}))).unwrap();
        assert!(!draft.open_now);
        assert_eq!(draft.fields.winners_count, None);
        let refused = read_new_campaign(body(json!({"status": "finished"})))
            .err()
            .unwrap();
        assert_eq!(field_errors(refused), ["status"]);
    }

    #[test]
    fn only_a_draft_opens_later_and_it_closes_after_it_opens() {
        let later = json!({"opens_at": "2030-01-01T00:00:00Z"});
        let refused = read_new_campaign(body(later.clone())).err().unwrap();
        assert_eq!(field_errors(refused), ["opens_at"]);
        let mut draft = later;
        draft["status"] = json!("draft");
        draft["closes_at"] = json!("2029-12-31T00:00:00Z");
        let refused = read_new_campaign(body(draft)).err().unwrap();
        assert_eq!(field_errors(refused), ["closes_at"]);
    }

    #[test]
    fn winners_count_is_between_1_and_1000() {
        for bad in [json!(0), json!(1001), json!("3"), json!(2.5), json!(null)] {
            let refused = read_new_campaign(body(json!({"winners_count": bad}))).err();
            assert_eq!(field_errors(refused.unwrap()), ["winners_count"], "{bad}");
        }
        let ok = read_new_campaign(body(json!({"winners_count": 1000}))).unwrap();
        assert_eq!(ok.fields.winners_count, Some(1000));
    }

    #[test]
    fn an_edit_may_not_set_the_status() {
        let refused = read_campaign_edit(json!({"status": "open"}), Presence::Optional).err();
        assert_eq!(field_errors(refused.unwrap()), ["status"]);
        let cleared = read_campaign_edit(json!({"closes_at": null}), Presence::Optional).unwrap();
        assert_eq!(cleared.closes_at, Some(None));
    }
}
