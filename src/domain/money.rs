//! Money as exact integer minor units (cents), parsed from and printed as decimal text.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use super::number_text::NumberText;

/// A positive amount of money held exactly as integer minor units (hundredths).
///
/// Amounts never pass through a float, nor through any type with a limited number of
/// digits: the client's decimal text is read digit by digit, and printed back as the
/// shortest decimal text with the same value.
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

    /// Parses the text of a JSON number (`100.5`, `100.50`, `1e2`, `1.5E+01`) exactly.
    ///
    /// Every notation of one value gets one answer: the text is reduced to its
    /// significant digits and a power of ten before any rule is checked, so digits
    /// past what a fixed-size decimal holds cannot be rounded away, and an exponent of
    /// any size is only compared, never applied.
    pub fn parse_decimal(text: &str) -> Result<Self, MoneyError> {
        let number = NumberText::parse(text.trim()).ok_or(MoneyError::NotANumber)?;
        let Some(significant) = number.significant() else {
            return Err(MoneyError::NotPositive);
        };
        if number.negative {
            return Err(MoneyError::NotPositive);
        }
        // The value is significant.digits × 10^power, its last digit not zero.
        if significant.power < -2 {
            return Err(MoneyError::TooPrecise);
        }
        // From ten digits before the decimal point on, the value is at least 10^9.
        if significant.count as i128 + significant.power > 9 {
            return Err(MoneyError::TooLarge);
        }
        // At most 11 digits, scaled to at most 10^11 cents: well inside an i64.
        let mut cents: i64 = 0;
        for digit in number
            .digits()
            .skip(significant.first)
            .take(significant.count)
        {
            cents = cents * 10 + i64::from(digit - b'0');
        }
        for _ in 0..significant.power + 2 {
            cents *= 10;
        }
        Ok(Self { cents })
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
    fn digits_past_what_a_fixed_size_decimal_holds_are_not_rounded_away() {
        // 30 significant digits: the old exponent path rounded this to 100.
        let long = "1.00000000000000000000000000001e2";
        assert_eq!(Money::parse_decimal(long), Err(MoneyError::TooPrecise));
        assert_eq!(
            Money::parse_decimal("100.000000000000000000000000001"),
            Err(MoneyError::TooPrecise)
        );
        let zeros = format!("1{}e-40", "0".repeat(40));
        assert_eq!(Money::parse_decimal(&zeros).unwrap().cents(), 100);
        let exact = format!("12.34{}", "0".repeat(100));
        assert_eq!(Money::parse_decimal(&exact).unwrap().cents(), 1_234);
    }

    #[test]
    fn every_exponent_notation_json_allows_is_read_exactly() {
        for (text, cents) in [
            ("1E2", 10_000),
            ("1e+2", 10_000),
            ("1e002", 10_000),
            ("1E+0002", 10_000),
            ("12345e-2", 12_345),
            ("0.5e1", 500),
            ("0.0001e4", 100),
            ("1e-0002", 1),
            ("9.9999999999e8", 99_999_999_999),
        ] {
            assert_eq!(Money::parse_decimal(text).unwrap().cents(), cents, "{text}");
        }
    }

    #[test]
    fn exponents_of_any_size_are_compared_not_applied() {
        let huge = format!("1e{}", "9".repeat(200));
        assert_eq!(Money::parse_decimal(&huge), Err(MoneyError::TooLarge));
        let tiny = format!("1e-{}", "9".repeat(200));
        assert_eq!(Money::parse_decimal(&tiny), Err(MoneyError::TooPrecise));
        let zero = format!("0e{}", "9".repeat(200));
        assert_eq!(Money::parse_decimal(&zero), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_decimal("-0e5"), Err(MoneyError::NotPositive));
        assert_eq!(
            Money::parse_decimal("1e99999999999999999999"),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn text_outside_the_json_number_grammar_is_not_a_number() {
        for text in [
            "", "-", "1.", ".5", "1e", "1e+", "1.e2", "+1", "0x10", "1_0", "1e2.5", "--1",
        ] {
            assert_eq!(
                Money::parse_decimal(text),
                Err(MoneyError::NotANumber),
                "{text:?}"
            );
        }
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
