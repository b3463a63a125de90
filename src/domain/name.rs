//! `Name`: a display name of a store, product or segment.
//!
//! Surrounding whitespace is trimmed (as the original's serializers did) and the
//! trimmed text must have 1 to 100 characters, none of them a control
//! character (a name is one line: it also ends up in email subjects).

use std::fmt;

/// The longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A trimmed, non-empty name of at most [`MAX_NAME_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

/// Why a name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("may not be blank")]
    Blank,
    #[error("must have at most {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("may not contain line breaks or control characters")]
    ControlCharacters,
}

impl Name {
    /// Trims `text` and checks its length.
    pub fn parse(text: &str) -> Result<Name, NameError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(NameError::Blank);
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(NameError::ControlCharacters);
        }
        Ok(Name(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(Name::parse("  TechShop ").unwrap().as_str(), "TechShop");
    }

    #[test]
    fn a_blank_name_is_refused() {
        assert_eq!(Name::parse("   "), Err(NameError::Blank));
        assert_eq!(Name::parse(""), Err(NameError::Blank));
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        assert!(Name::parse(&"í".repeat(100)).is_ok());
        assert_eq!(Name::parse(&"a".repeat(101)), Err(NameError::TooLong));
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(Name::parse("Tech\nShop"), Err(NameError::ControlCharacters));
        assert_eq!(
            Name::parse("Tech\u{0}Shop"),
            Err(NameError::ControlCharacters)
        );
    }
}
