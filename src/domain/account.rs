//! Account fields: `Username`, `Password` (the plain text, only in transit) and
//! `EmailAddress`.
//!
//! Usernames follow the original's rules (Django's: up to 150 of letters,
//! digits and `@.+-_`), so every account it had can be recreated. Addresses are
//! checked by the `email_address` crate, not a hand-written pattern, and then
//! by `lettre`'s parsers, the ones the mailer uses: RFC 5322 allows addresses
//! (quoted local parts such as `"a b"@example.com`) that the transport refuses
//! to send to, and an address nobody can mail must be refused when it is given,
//! not discovered later by the mailer.

use std::fmt;
use std::str::FromStr;

/// The longest username accepted.
pub const MAX_USERNAME_CHARS: usize = 150;
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted: bounds the hashing work one request can ask for.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Why an account field was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    #[error("may not be blank")]
    BlankUsername,
    #[error("must have at most {MAX_USERNAME_CHARS} characters")]
    UsernameTooLong,
    #[error("may contain only letters, digits and @/./+/-/_")]
    UsernameCharacters,
    #[error("must have at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    #[error("must have at most {MAX_PASSWORD_CHARS} characters")]
    PasswordTooLong,
    #[error("must be a valid email address")]
    InvalidEmail,
}

/// A login name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Trims and checks a username.
    pub fn parse(text: &str) -> Result<Username, AccountError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(AccountError::BlankUsername);
        }
        if trimmed.chars().count() > MAX_USERNAME_CHARS {
            return Err(AccountError::UsernameTooLong);
        }
        let allowed = |c: char| c.is_alphanumeric() || "@.+-_".contains(c);
        if !trimmed.chars().all(allowed) {
            return Err(AccountError::UsernameCharacters);
        }
        Ok(Username(trimmed.to_owned()))
    }

    /// The username as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plain-text password on its way to the hasher. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks the length (in characters); the text is kept exactly as given.
    pub fn parse(text: &str) -> Result<Password, AccountError> {
        let length = text.chars().count();
        if length < MIN_PASSWORD_CHARS {
            return Err(AccountError::PasswordTooShort);
        }
        if length > MAX_PASSWORD_CHARS {
            return Err(AccountError::PasswordTooLong);
        }
        Ok(Password(text.to_owned()))
    }

    /// The plain text, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Password(***)")
    }
}

/// A syntactically valid email address, trimmed, with its domain lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Trims and validates an address.
    pub fn parse(text: &str) -> Result<EmailAddress, AccountError> {
        let trimmed = text.trim();
        let checked = email_address::EmailAddress::from_str(trimmed)
            .map_err(|_| AccountError::InvalidEmail)?;
        // Display names ("Ana <ana@x>") are not addresses.
        if checked.email() != trimmed || checked.domain().contains(['[', ']']) {
            return Err(AccountError::InvalidEmail);
        }
        let local = checked.local_part();
        let address = format!("{local}@{}", checked.domain().to_lowercase());
        if !is_mailable(&address) || !is_mailable(&address.to_lowercase()) {
            return Err(AccountError::InvalidEmail);
        }
        Ok(EmailAddress(address))
    }

    /// The address lower-cased whole: the form two entries are compared in.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True when the mail transport takes `address` as it is: it parses as a
/// `lettre::Address`, and the mailer's `Mailbox` parse reads back the very same
/// address (a quoted local part like `"ana"` would be unquoted, so one mailbox
/// could enter a campaign under two spellings).
fn is_mailable(address: &str) -> bool {
    address.parse::<lettre::Address>().is_ok()
        && address
            .parse::<lettre::message::Mailbox>()
            .is_ok_and(|mailbox| {
                mailbox.name.is_none() && AsRef::<str>::as_ref(&mailbox.email) == address
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_allow_the_originals_characters() {
        assert!(Username::parse("ana.maria+1@x_y-z").is_ok());
        assert_eq!(
            Username::parse("ana maria"),
            Err(AccountError::UsernameCharacters)
        );
        assert_eq!(Username::parse("  "), Err(AccountError::BlankUsername));
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert_eq!(
            Password::parse("1234567"),
            Err(AccountError::PasswordTooShort)
        );
        assert!(Password::parse("12345678").is_ok());
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let password = Password::parse("correct horse").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn email_addresses_are_validated_and_their_domain_lowercased() {
        let address = EmailAddress::parse("  Ana@Example.COM ").unwrap();
        assert_eq!(address.as_str(), "Ana@example.com");
        assert_eq!(address.normalized(), "ana@example.com");
        for bad in [
            "ana",
            "ana@",
            "@example.com",
            "Ana <ana@example.com>",
            "a b@c.d",
            "\"a b\"@example.com",
            "\"ana\"@example.com",
        ] {
            assert_eq!(
                EmailAddress::parse(bad),
                Err(AccountError::InvalidEmail),
                "{bad}"
            );
        }
    }
}
