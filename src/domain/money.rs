//! Money as exact integer minor units (cents), parsed from and printed as decimal text.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// A positive amount of money held exactly as integer minor units (hundredths).
///
/// Amounts never pass through a float: the client's decimal text is parsed into
/// cents and printed back as the shortest decimal text with the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money {
    cents: i64,
}

/// Why a decimal text is not an acceptable amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a number")]
    NotANumber,
    #[error("must be greater than 0")]
    NotPositive,
    #[error("must have at most 2 decimal places")]
    TooPrecise,
    #[error("must be at most 999999999.99")]
    TooLarge,
}

impl Money {
    /// Exclusive upper bound in cents: one billion in major units. Far above any real
    /// basket, far below where sums over many orders could overflow an `i64`.
    pub const MAX_CENTS: i64 = 100_000_000_000;

    /// Builds an amount from minor units, as stored; `None` outside the accepted range.
    pub fn from_cents(cents: i64) -> Option<Self> {
        (cents > 0 && cents < Self::MAX_CENTS).then_some(Self { cents })
    }

    /// The amount in minor units (hundredths).
    pub fn cents(self) -> i64 {
        self.cents
    }

    /// Parses the text of a JSON number (`100.5`, `100.50`, `1e2`) exactly.
    pub fn parse_decimal(text: &str) -> Result<Self, MoneyError> {
        let text = text.trim();
        // Decimal's own parser does not take exponents, and its scientific parser
        // requires one, so pick by the text; both are exact.
        let parsed = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text)
        } else {
            Decimal::from_str_exact(text)
        };
        let value = parsed.map_err(|_| classify_unparsable(text))?;
        if value <= Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        if value.normalize().scale() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        if value >= Decimal::new(Self::MAX_CENTS, 2) {
            return Err(MoneyError::TooLarge);
        }
        let mut cents = value;
        cents.rescale(2);
        let cents = i64::try_from(cents.mantissa()).map_err(|_| MoneyError::TooLarge)?;
        Ok(Self { cents })
    }
}

/// Names what is wrong with a number text that `Decimal` could not hold: it is out of
/// range one way or the other, or it was never a number.
fn classify_unparsable(text: &str) -> MoneyError {
    if !text.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return MoneyError::NotANumber;
    }
    let mut parts = text.splitn(2, ['e', 'E']);
    let mantissa = parts.next().unwrap_or_default();
    let exponent: i64 = parts.next().and_then(|e| e.parse().ok()).unwrap_or(0);
    let fraction_digits = mantissa.split_once('.').map_or(0, |(_, f)| f.len());
    if text.starts_with('-') || mantissa.chars().all(|c| c == '0' || c == '.') {
        MoneyError::NotPositive
    } else if exponent < 0 || fraction_digits > 2 {
        MoneyError::TooPrecise
    } else {
        MoneyError::TooLarge
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse_decimal(text)
    }
}

/// Prints the shortest decimal text of the amount: `100.5`, `100`, `0.01`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Decimal::new(self.cents, 2).normalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals_into_cents() {
        assert_eq!(Money::parse_decimal("100.5").unwrap().cents(), 10_050);
        assert_eq!(Money::parse_decimal("100.50").unwrap().cents(), 10_050);
        assert_eq!(Money::parse_decimal("0.01").unwrap().cents(), 1);
        assert_eq!(Money::parse_decimal("7").unwrap().cents(), 700);
    }

    #[test]
    fn parses_exponents_exactly() {
        assert_eq!(Money::parse_decimal("1e2").unwrap().cents(), 10_000);
        assert_eq!(Money::parse_decimal("1.5E1").unwrap().cents(), 1_500);
        assert_eq!(Money::parse_decimal("25e-2").unwrap().cents(), 25);
    }

    #[test]
    fn trailing_zeros_beyond_two_places_are_still_two_places() {
        assert_eq!(Money::parse_decimal("1.2300").unwrap().cents(), 123);
    }

    #[test]
    fn rejects_zero_and_negative_amounts() {
        assert_eq!(Money::parse_decimal("0"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_decimal("0.00"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_decimal("-5"), Err(MoneyError::NotPositive));
    }

    #[test]
    fn rejects_three_decimal_places() {
        assert_eq!(Money::parse_decimal("1.005"), Err(MoneyError::TooPrecise));
        assert_eq!(Money::parse_decimal("1e-3"), Err(MoneyError::TooPrecise));
    }

    #[test]
    fn rejects_amounts_at_or_above_the_maximum() {
        assert_eq!(
            Money::parse_decimal("1000000000"),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(Money::parse_decimal("1e400"), Err(MoneyError::TooLarge));
        assert_eq!(
            Money::parse_decimal("123456789012345678901234567890123"),
            Err(MoneyError::TooLarge)
        );
        assert!(Money::parse_decimal("999999999.99").is_ok());
    }

    #[test]
    fn names_the_fault_of_numbers_too_extreme_to_hold() {
        assert_eq!(Money::parse_decimal("-1e400"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_decimal("1e-400"), Err(MoneyError::TooPrecise));
        assert_eq!(
            Money::parse_decimal("0.00000000000000000000000000000001"),
            Err(MoneyError::TooPrecise)
        );
        assert_eq!(Money::parse_decimal("abc"), Err(MoneyError::NotANumber));
    }

    #[test]
    fn prints_the_shortest_equal_decimal() {
        assert_eq!(Money::parse_decimal("100.50").unwrap().to_string(), "100.5");
        assert_eq!(Money::parse_decimal("100.00").unwrap().to_string(), "100");
        assert_eq!(Money::parse_decimal("0.07").unwrap().to_string(), "0.07");
        assert_eq!(Money::parse_decimal("1e2").unwrap().to_string(), "100");
    }

    #[test]
    fn from_cents_enforces_the_same_range() {
        assert!(Money::from_cents(0).is_none());
        assert!(Money::from_cents(Money::MAX_CENTS).is_none());
        assert_eq!(Money::from_cents(10_050).unwrap().to_string(), "100.5");
    }
}
