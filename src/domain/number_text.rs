//! The text of a JSON number taken apart exactly: sign, digits and a power of ten, with
//! no fixed-size type in between, so no digit can be rounded away before money's rules
//! see it.

/// The parts of a JSON number's text: `-`? integer (`.` fraction)? ([eE] exponent)?.
pub(super) struct NumberText<'a> {
    pub(super) negative: bool,
    integer: &'a str,
    fraction: &'a str,
    /// Saturated at ±10^30: past any power that matters, and no sum below overflows.
    exponent: i128,
}

/// Where a number's significant digits lie in its run of digits, and the power of
/// ten that scales them.
pub(super) struct Significant {
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) power: i128,
}

/// Exponent digits beyond which an exponent counts as ±10^30.
const MAX_EXPONENT_DIGITS: usize = 30;

impl<'a> NumberText<'a> {
    /// Checks the grammar of a JSON number (leading zeros in the integer part are let
    /// through, as the decimal parser used before did); `None` if it is not one.
    pub(super) fn parse(text: &'a str) -> Option<Self> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, parse_exponent(exponent)?),
            None => (rest, 0),
        };
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
        if !all_digits(integer) || !all_digits(fraction) {
            return None;
        }
        Some(Self {
            negative,
            integer,
            fraction,
            exponent,
        })
    }

    /// Every digit, integer then fraction, without the point.
    pub(super) fn digits(&self) -> impl DoubleEndedIterator<Item = u8> + '_ {
        self.integer.bytes().chain(self.fraction.bytes())
    }

    /// `None` for zero (in any notation).
    pub(super) fn significant(&self) -> Option<Significant> {
        let total = self.integer.len() + self.fraction.len();
        let first = self.digits().position(|d| d != b'0')?;
        let trailing_zeros = self.digits().rev().position(|d| d != b'0')?;
        Some(Significant {
            first,
            count: total - first - trailing_zeros,
            power: self.exponent - self.fraction.len() as i128 + trailing_zeros as i128,
        })
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// An exponent's value: `[+-]? digits`, leading zeros allowed.
fn parse_exponent(text: &str) -> Option<i128> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if !all_digits(digits) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    let magnitude = if digits.is_empty() {
        0
    } else if digits.len() > MAX_EXPONENT_DIGITS {
        10_i128.pow(MAX_EXPONENT_DIGITS as u32)
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}
