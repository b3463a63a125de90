//! Raffle campaigns: the campaign and subscriber shapes of API.md, the rules a
//! campaign's email fields and a subscriber's `data` must follow, the emails
//! a campaign sends (verification, winner, admin) and the fair draw.
//!
//! Emails are rendered here, as plain text plus an HTML alternative, so the
//! outbox holds exactly what will be sent. The draw takes its random source as
//! a parameter; the service passes the operating system's (`OsRng`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The placeholder a verification template must contain.
pub const VERIFY_URL_PLACEHOLDER: &str = "{{verify_url}}";
/// The largest `data` object a subscriber may attach, serialised.
pub const MAX_DATA_BYTES: usize = 4096;
/// The longest subject line accepted.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// The longest campaign description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// The longest verification template accepted.
pub const MAX_TEMPLATE_CHARS: usize = 20_000;

/// Where a campaign is in its life: a draft takes no entries yet, an open
/// campaign takes them (until `closes_at`), a finished one has its winners, a
/// cancelled one never draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    Draft,
    Open,
    Finished,
    Cancelled,
}

impl CampaignStatus {
    /// Reads the stored form (`draft`, `open`, `finished`, `cancelled`).
    pub fn from_stored(text: &str) -> Option<CampaignStatus> {
        match text {
            "draft" => Some(CampaignStatus::Draft),
            "open" => Some(CampaignStatus::Open),
            "finished" => Some(CampaignStatus::Finished),
            "cancelled" => Some(CampaignStatus::Cancelled),
            _ => None,
        }
    }

    /// The stored form.
    pub fn as_stored(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Open => "open",
            CampaignStatus::Finished => "finished",
            CampaignStatus::Cancelled => "cancelled",
        }
    }

    /// Whether `open/` may open it: only a draft.
    pub fn can_open(self) -> bool {
        self == CampaignStatus::Draft
    }

    /// Whether `cancel/` may cancel it: a draft or an open campaign (a
    /// cancelled one stays cancelled, harmlessly).
    pub fn can_cancel(self) -> bool {
        self != CampaignStatus::Finished
    }

    /// Whether its winners count, opening and closing times may still change:
    /// not once it is drawn or cancelled.
    pub fn is_settled(self) -> bool {
        matches!(self, CampaignStatus::Finished | CampaignStatus::Cancelled)
    }
}

/// The most winners one draw may pick.
pub const MAX_WINNERS: i64 = 1000;

/// A campaign as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub status: CampaignStatus,
    pub admin_email: String,
    pub email_subject: String,
    pub email_template: String,
    pub subscriber_count: i64,
    pub verified_count: i64,
    /// When a draft opens by itself; once open, when it opened.
    pub opens_at: Option<DateTime<Utc>>,
    /// From then on an open campaign takes no entries.
    pub closes_at: Option<DateTime<Utc>>,
    /// How many distinct winners the draw picks (1..1000).
    pub winners_count: i32,
    /// The winners in draw order; empty before the draw.
    pub winners: Vec<Winner>,
    /// The first winner, or null (for clients that know only one).
    pub winner: Option<Winner>,
    /// Lowercase hex SHA-256 of the draw's secret seed, from opening on.
    pub seed_commitment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Campaign {
    /// Whether it takes entries at `now`: open and not yet closed.
    pub fn takes_entries(&self, now: DateTime<Utc>) -> bool {
        self.status == CampaignStatus::Open && self.closes_at.is_none_or(|closes| now < closes)
    }
}

/// The subscriber a draw picked, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Winner {
    pub id: i64,
    pub email: String,
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A subscriber as the admin's listing shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Subscriber {
    pub id: i64,
    pub email: String,
    #[schema(value_type = Object)]
    pub data: Value,
    pub verified: bool,
    pub created_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
}

/// What `add_subscriber` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    pub id: i64,
    pub email: String,
    pub verified: bool,
}

/// Why a campaign field or a subscriber's data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaffleFieldError {
    #[error("may not be blank")]
    Blank,
    #[error("must have at most {0} characters")]
    TooLong(usize),
    #[error("may not contain line breaks or control characters")]
    ControlCharacters,
    #[error("must contain {VERIFY_URL_PLACEHOLDER}, where the confirmation link goes")]
    MissingVerifyUrl,
    #[error("must be a JSON object")]
    NotAnObject,
    #[error("must be at most {MAX_DATA_BYTES} bytes as JSON")]
    DataTooLarge,
}

/// A subject line: one line of text (no header injection), 1 to 200 characters.
pub fn parse_subject(text: &str) -> Result<String, RaffleFieldError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(RaffleFieldError::Blank);
    }
    if trimmed.chars().count() > MAX_SUBJECT_CHARS {
        return Err(RaffleFieldError::TooLong(MAX_SUBJECT_CHARS));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(RaffleFieldError::ControlCharacters);
    }
    Ok(trimmed.to_owned())
}

/// A campaign description: any text up to [`MAX_DESCRIPTION_CHARS`].
pub fn parse_description(text: &str) -> Result<String, RaffleFieldError> {
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(RaffleFieldError::TooLong(MAX_DESCRIPTION_CHARS));
    }
    Ok(text.to_owned())
}

/// A verification template: text that says where the link goes.
pub fn parse_template(text: &str) -> Result<String, RaffleFieldError> {
    if text.trim().is_empty() {
        return Err(RaffleFieldError::Blank);
    }
    if text.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(RaffleFieldError::TooLong(MAX_TEMPLATE_CHARS));
    }
    if !text.contains(VERIFY_URL_PLACEHOLDER) {
        return Err(RaffleFieldError::MissingVerifyUrl);
    }
    Ok(text.to_owned())
}

/// A subscriber's `data`: any JSON object up to [`MAX_DATA_BYTES`] serialised.
pub fn parse_data(value: &Value) -> Result<Value, RaffleFieldError> {
    if !value.is_object() {
        return Err(RaffleFieldError::NotAnObject);
    }
    if value.to_string().len() > MAX_DATA_BYTES {
        return Err(RaffleFieldError::DataTooLarge);
    }
    Ok(value.clone())
}

/// One email ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
}

/// The confirmation email of a new entry: the campaign's own subject and
/// template, with `{{verify_url}}` replaced by the link.
pub fn verification_email(
    recipient: &str,
    subject: &str,
    template: &str,
    verify_url: &str,
) -> OutgoingEmail {
    let body_text = template.replace(VERIFY_URL_PLACEHOLDER, verify_url);
    let link = format!(
        "<a href=\"{url}\">{url}</a>",
        url = html_escape::encode_double_quoted_attribute(verify_url)
    );
    let body_html =
        paragraphs(&html_escape::encode_text(template)).replace(VERIFY_URL_PLACEHOLDER, &link);
    OutgoingEmail {
        recipient: recipient.to_owned(),
        subject: subject.to_owned(),
        body_text,
        body_html: html_document(&body_html),
    }
}

/// Tells a winner they won `campaign_name`.
pub fn winner_email(recipient: &str, campaign_name: &str) -> OutgoingEmail {
    let body_text = format!(
        "Congratulations!\n\nYou won the draw for \"{campaign_name}\". \
         We will be in touch about your prize.\n"
    );
    plain_email(recipient, &format!("You won: {campaign_name}"), body_text)
}

/// Tells the campaign's admin who won, in draw order, out of how many
/// verified entries.
pub fn admin_result_email(
    recipient: &str,
    campaign_name: &str,
    winners: &[&str],
    verified_count: i64,
) -> OutgoingEmail {
    let entries = if verified_count == 1 {
        "entry"
    } else {
        "entries"
    };
    let listed: String = winners
        .iter()
        .enumerate()
        .map(|(at, email)| format!("{}. {email}\n", at + 1))
        .collect();
    let (heading, subject) = match winners.len() {
        1 => ("Winner", "Winner drawn"),
        _ => ("Winners, in draw order", "Winners drawn"),
    };
    let body_text = format!(
        "The draw for \"{campaign_name}\" is done.\n\n{heading}:\n{listed}\n\
         Drawn from {verified_count} verified {entries}.\n"
    );
    plain_email(recipient, &format!("{subject}: {campaign_name}"), body_text)
}

fn plain_email(recipient: &str, subject: &str, body_text: String) -> OutgoingEmail {
    let body_html = html_document(&paragraphs(&html_escape::encode_text(&body_text)));
    OutgoingEmail {
        recipient: recipient.to_owned(),
        subject: subject.to_owned(),
        body_text,
        body_html,
    }
}

/// Escaped text as HTML paragraphs: blank lines split paragraphs, single line
/// breaks become `<br>`.
fn paragraphs(escaped: &str) -> String {
    escaped
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| format!("<p>{}</p>", block.trim().replace('\n', "<br>\n")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn html_document(body: &str) -> String {
    format!("<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_subject_is_one_line() {
        assert_eq!(parse_subject("  Confirm  ").unwrap(), "Confirm");
        assert_eq!(
            parse_subject("Hi\r\nBcc: x@y"),
            Err(RaffleFieldError::ControlCharacters)
        );
        assert_eq!(parse_subject(" "), Err(RaffleFieldError::Blank));
        assert!(parse_subject(&"x".repeat(201)).is_err());
    }

    #[test]
    fn a_template_must_carry_the_link() {
        assert!(parse_template("Confirm: {{verify_url}}").is_ok());
        assert_eq!(
            parse_template("Confirm soon"),
            Err(RaffleFieldError::MissingVerifyUrl)
        );
    }

    #[test]
    fn data_is_an_object_of_at_most_4_kib() {
        assert!(parse_data(&json!({"name": "Ana"})).is_ok());
        assert_eq!(parse_data(&json!([1])), Err(RaffleFieldError::NotAnObject));
        let big = json!({"x": "a".repeat(MAX_DATA_BYTES)});
        assert_eq!(parse_data(&big), Err(RaffleFieldError::DataTooLarge));
        let just_fits = json!({"x": "a".repeat(MAX_DATA_BYTES - 8)});
        assert!(parse_data(&just_fits).is_ok());
    }

    #[test]
    fn the_verification_email_links_in_both_parts_and_escapes_the_template() {
        let url = "https://raffles.example/api/raffles/verify_subscriber/?code=ab&x=1";
        let email = verification_email(
            "ana@example.com",
            "Confirm",
            "Hi <friend>!\n\nConfirm: {{verify_url}}",
            url,
        );
        assert_eq!(email.body_text, format!("Hi <friend>!\n\nConfirm: {url}"));
        assert!(email.body_html.contains("Hi &lt;friend&gt;!"));
        assert!(email.body_html.contains(
            "<a href=\"https://raffles.example/api/raffles/verify_subscriber/?code=ab&amp;x=1\">"
        ));
    }

    #[test]
    fn the_result_emails_name_the_campaign_and_the_winner() {
        let winner = winner_email("ana@example.com", "Valentine stay");
        assert!(winner.subject.contains("Valentine stay"));
        let admin = admin_result_email(
            "boss@example.com",
            "Valentine stay",
            &["ana@example.com"],
            87,
        );
        assert!(admin.body_text.contains("Winner:\n1. ana@example.com\n"));
        assert!(admin.body_text.contains("87 verified entries"));
        let both = ["ana@example.com", "bo@example.com"];
        let admin = admin_result_email("boss@example.com", "Valentine stay", &both, 1);
        assert!(admin
            .body_text
            .contains("1. ana@example.com\n2. bo@example.com\n"));
        assert!(admin.body_text.contains("1 verified entry."));
    }
}
