//! `Money`: a positive amount with at most two decimal places that fits
//! PostgreSQL's `numeric(10, 2)`.
//!
//! Shown to clients as a string with exactly two places (`"499.00"`), as the
//! original did, so no client ever sees a binary floating-point rounding.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

/// The largest amount `numeric(10, 2)` holds.
const MAX_CENTS: i64 = 9_999_999_999;

/// A positive amount of money with cent precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

/// Why an amount was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("must be a decimal number such as \"499.00\"")]
    NotADecimal,
    #[error("must have at most 2 decimal places")]
    TooPrecise,
    #[error("must be greater than 0")]
    NotPositive,
    #[error("must be at most 99999999.99")]
    TooLarge,
}

impl Money {
    /// Parses decimal text (`"499"`, `"499.5"`, `"499.00"`).
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let text = text.trim();
        let looks_decimal = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+');
        if !looks_decimal {
            return Err(MoneyError::NotADecimal);
        }
        let amount = Decimal::from_str(text).map_err(|_| MoneyError::NotADecimal)?;
        Money::from_decimal(amount)
    }

    /// Checks a decimal read from elsewhere (the database, a JSON number).
    pub fn from_decimal(amount: Decimal) -> Result<Money, MoneyError> {
        let amount = amount.normalize();
        if amount.scale() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        if amount <= Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        if amount > Decimal::new(MAX_CENTS, 2) {
            return Err(MoneyError::TooLarge);
        }
        let mut exact = amount;
        exact.rescale(2);
        Ok(Money(exact))
    }

    /// The amount as a decimal with two places.
    pub fn amount(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:.2}", self.0)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_shown_with_two_places() {
        assert_eq!(Money::parse("499").unwrap().to_string(), "499.00");
        assert_eq!(Money::parse("499.5").unwrap().to_string(), "499.50");
        assert_eq!(Money::parse(" 999.00 ").unwrap().to_string(), "999.00");
    }

    #[test]
    fn zero_and_negative_amounts_are_refused() {
        assert_eq!(Money::parse("0"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse("-5.00"), Err(MoneyError::NotPositive));
    }

    #[test]
    fn fractions_of_a_cent_are_refused_but_trailing_zeros_are_not() {
        assert_eq!(Money::parse("1.005"), Err(MoneyError::TooPrecise));
        assert_eq!(Money::parse("1.5000").unwrap().to_string(), "1.50");
    }

    #[test]
    fn text_that_is_not_a_plain_decimal_is_refused() {
        for text in ["", "abc", "1e3", "NaN", "12,50"] {
            assert_eq!(Money::parse(text), Err(MoneyError::NotADecimal), "{text}");
        }
    }

    #[test]
    fn amounts_beyond_the_column_are_refused() {
        assert!(Money::parse("99999999.99").is_ok());
        assert_eq!(Money::parse("100000000"), Err(MoneyError::TooLarge));
    }

    #[test]
    fn money_serializes_as_a_string() {
        let json = serde_json::to_string(&Money::parse("12.3").unwrap()).unwrap();
        assert_eq!(json, "\"12.30\"");
    }
}
