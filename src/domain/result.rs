//! What a processing step may hand back about the work it did: a small JSON object
//! kept with the order once it is `Completed`.

use std::fmt;

/// The most a result may take, in bytes of JSON text: enough for a charge id, a
/// tracking number and a few references; anything larger is not kept.
pub const MAX_RESULT_BYTES: usize = 16 * 1024;

/// A JSON object of at most [`MAX_RESULT_BYTES`], kept as the text it came as (so it
/// reads back byte for byte as the processor sent it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderResult(String);

/// Why an answer is not kept as a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultRejected {
    #[error("the answer is {0} bytes, over the {MAX_RESULT_BYTES}-byte limit for a result")]
    TooLarge(usize),
    #[error("the answer is not a JSON object")]
    NotAnObject,
}

impl OrderResult {
    /// The text as a result, if it is a JSON object within the size limit.
    pub fn parse(text: &str) -> Result<Self, ResultRejected> {
        if text.len() > MAX_RESULT_BYTES {
            return Err(ResultRejected::TooLarge(text.len()));
        }
        let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
        match serde_json::from_str::<&serde_json::value::RawValue>(trimmed) {
            Ok(raw) if raw.get().starts_with('{') => Ok(Self(trimmed.to_owned())),
            _ => Err(ResultRejected::NotAnObject),
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_objects_within_the_limit_are_kept() {
        let kept = OrderResult::parse(" {\"charge\": \"ch_1\", \"n\": 1.50}\n").unwrap();
        assert_eq!(kept.as_str(), "{\"charge\": \"ch_1\", \"n\": 1.50}");
        for refused in ["[1]", "\"ok\"", "OK", "", "{", "{} {}", "null"] {
            assert_eq!(
                OrderResult::parse(refused),
                Err(ResultRejected::NotAnObject),
                "{refused:?}"
            );
        }
        let at_limit = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_RESULT_BYTES - 8));
        assert_eq!(at_limit.len(), MAX_RESULT_BYTES);
        assert!(OrderResult::parse(&at_limit).is_ok());
        let over = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_RESULT_BYTES - 7));
        assert_eq!(
            OrderResult::parse(&over),
            Err(ResultRejected::TooLarge(MAX_RESULT_BYTES + 1))
        );
    }
}
