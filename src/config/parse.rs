//! What settings of several groups share: the duration parser, the longest duration,
//! and the wrapper that keeps a secret out of `Debug`.

use std::time::Duration;

/// The longest any duration setting may be: a day, far past any sensible value and
/// far inside what timestamps can hold.
pub(super) const DAY_MS: u64 = 86_400_000;

/// `90s`, `15m`, `12h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a number followed by s, m, h or d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} does not end in s, m, h or d")),
    };
    if number == 0 || number > 365 * 86_400 / seconds {
        return Err(format!("{text:?} must be between one second and a year"));
    }
    Ok(Duration::from_secs(number * seconds))
}

/// A secret setting, which `Debug` (and so any dump of the configuration) never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_take_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("400d").is_err());
        assert!(parse_duration("").is_err());
    }
}
