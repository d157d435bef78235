//! Property tests of money parsing: every JSON notation of a random value gets the
//! answer an exact reference (`bigdecimal`, arbitrary precision) gives for it.

use std::str::FromStr;

use bigdecimal::{BigDecimal, Signed, ToPrimitive, Zero};
use proptest::prelude::*;

use super::{Money, MoneyError};

/// What the rules say of a value, decided by arbitrary-precision arithmetic.
fn reference(text: &str) -> Result<i64, MoneyError> {
    let value = BigDecimal::from_str(text).expect("the generator writes valid numbers");
    if value.is_zero() || value.is_negative() {
        return Err(MoneyError::NotPositive);
    }
    let (_, scale) = value.normalized().as_bigint_and_exponent();
    if scale > 2 {
        return Err(MoneyError::TooPrecise);
    }
    if value >= 1_000_000_000 {
        return Err(MoneyError::TooLarge);
    }
    Ok((value * BigDecimal::from(100))
        .to_i64()
        .expect("under 10^11"))
}

/// A value as digits and a point position: up to 40 digits (past the 28 of a
/// fixed-size decimal) between leading and trailing zeros, scaled by 10^-44 to 10^5.
/// Exponents far beyond those have unit tests of their own.
#[derive(Debug, Clone)]
struct Value {
    negative: bool,
    digits: String,
    /// Digits after the point in the plain notation (negative: zeros appended).
    scale: i32,
}

fn values() -> impl Strategy<Value = Value> {
    // Half anywhere, half near the accepted range, so both answers are common.
    let digits = prop_oneof!["0{0,3}[0-9]{1,40}0{0,5}", "[0-9]{1,11}0{0,3}"];
    let scale = prop_oneof![-5i32..45, 0i32..5];
    (prop::bool::weighted(0.1), digits, scale).prop_map(|(negative, digits, scale)| Value {
        negative,
        digits,
        scale,
    })
}

impl Value {
    /// The plain decimal: `123.45`, `0.0012`, `1200`.
    fn plain(&self) -> String {
        let sign = if self.negative { "-" } else { "" };
        let digits = if self.scale < 0 {
            format!("{}{}", self.digits, "0".repeat((-self.scale) as usize))
        } else {
            self.digits.clone()
        };
        let scale = self.scale.max(0) as usize;
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!(
            "{}{digits}",
            "0".repeat((scale + 1).saturating_sub(digits.len()))
        );
        let (integer, fraction) = padded.split_at(padded.len() - scale);
        format!("{sign}{integer}.{fraction}")
    }

    /// The same value with the point after `point` digits and an exponent making up the
    /// difference, written in one of the forms JSON allows.
    fn exponent(&self, point: usize, upper: bool, plus: bool, zeros: usize) -> String {
        let sign = if self.negative { "-" } else { "" };
        let point = point.clamp(1, self.digits.len());
        let (integer, fraction) = self.digits.split_at(point);
        let mantissa = if fraction.is_empty() {
            integer.to_owned()
        } else {
            format!("{integer}.{fraction}")
        };
        let exponent = fraction.len() as i64 - i64::from(self.scale);
        let e = if upper { 'E' } else { 'e' };
        let exponent_sign = match (exponent < 0, plus) {
            (true, _) => "-",
            (false, true) => "+",
            (false, false) => "",
        };
        let magnitude = format!("{}{}", "0".repeat(zeros), exponent.unsigned_abs());
        format!("{sign}{mantissa}{e}{exponent_sign}{magnitude}")
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_notation_of_a_value_gets_the_exact_references_answer(
        value in values(),
        point in 1usize..50,
        upper in any::<bool>(),
        plus in any::<bool>(),
        zeros in 0usize..4,
    ) {
        let plain = value.plain();
        let exponent = value.exponent(point, upper, plus, zeros);
        let expected = reference(&plain);
        prop_assert_eq!(reference(&exponent), expected, "the generator wrote two values");
        let parsed = |text: &str| Money::parse_decimal(text).map(Money::cents);
        prop_assert_eq!(parsed(&plain), expected, "plain {}", plain);
        prop_assert_eq!(parsed(&exponent), expected, "exponent {}", exponent);
    }

    #[test]
    fn amounts_print_as_text_that_parses_back_to_themselves(cents in 1i64..Money::MAX_CENTS) {
        let money = Money::from_cents(cents).unwrap();
        prop_assert_eq!(Money::parse_decimal(&money.to_string()), Ok(money));
    }
}
