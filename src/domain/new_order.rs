//! A client's new order, parsed field by field into types that cannot hold bad values.

use super::Money;

/// One offending field of a request and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Longest `user_id` or item id accepted, in characters.
const MAX_ID_CHARS: usize = 255;
/// NUL is the one character a text column cannot hold everywhere (PostgreSQL
/// refuses it), so it is refused at the door rather than failing in storage.
const NUL_MESSAGE: &str = "must not contain NUL (\\u0000) characters";
/// Most items one order may hold.
const MAX_ITEMS: usize = 1_000;

/// The customer an order belongs to: non-blank, at most 255 characters, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub fn parse(text: String) -> Result<Self, FieldError> {
        const FIELD: &str = "user_id";
        if text.trim().is_empty() {
            Err(FieldError::new(FIELD, "must not be empty"))
        } else if text.contains('\0') {
            Err(FieldError::new(FIELD, NUL_MESSAGE))
        } else if text.chars().count() > MAX_ID_CHARS {
            Err(FieldError::new(
                FIELD,
                format!("must be at most {MAX_ID_CHARS} characters"),
            ))
        } else {
            Ok(Self(text))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The items of an order: 1 to 1,000 ids of 1 to 255 characters, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemIds(Vec<String>);

impl ItemIds {
    /// Checks every item; the error names the first offending index.
    pub fn parse(items: Vec<String>) -> Result<Self, FieldError> {
        const FIELD: &str = "item_ids";
        if items.is_empty() {
            return Err(FieldError::new(FIELD, "must contain at least one item"));
        }
        if items.len() > MAX_ITEMS {
            return Err(FieldError::new(
                FIELD,
                format!("must contain at most {MAX_ITEMS} items"),
            ));
        }
        for (index, item) in items.iter().enumerate() {
            let fault = if item.is_empty() {
                Some("must not be empty".to_owned())
            } else if item.contains('\0') {
                Some(NUL_MESSAGE.to_owned())
            } else if item.chars().count() > MAX_ID_CHARS {
                Some(format!("must be at most {MAX_ID_CHARS} characters"))
            } else {
                None
            };
            if let Some(message) = fault {
                return Err(FieldError::new(format!("{FIELD}[{index}]"), message));
            }
        }
        Ok(Self(items))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// A new order that passed validation, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub user_id: UserId,
    pub item_ids: ItemIds,
    pub total_amount: Money,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_that_are_blank_or_too_long_are_refused() {
        assert!(UserId::parse("   ".into()).is_err());
        assert!(UserId::parse("".into()).is_err());
        assert!(UserId::parse("é".repeat(256)).is_err());
        assert!(UserId::parse("é".repeat(255)).is_ok());
    }

    #[test]
    fn nul_characters_are_refused_in_every_id() {
        assert!(UserId::parse("a\0b".into()).is_err());
        let err = ItemIds::parse(vec!["ok".into(), "\0".into()]).unwrap_err();
        assert_eq!(err.field, "item_ids[1]");
    }

    #[test]
    fn user_ids_are_kept_verbatim() {
        let id = UserId::parse(" user 1 ".into()).unwrap();
        assert_eq!(id.as_str(), " user 1 ");
    }

    #[test]
    fn item_errors_name_the_offending_index() {
        let err = ItemIds::parse(vec!["a".into(), "".into()]).unwrap_err();
        assert_eq!(err.field, "item_ids[1]");
        let err = ItemIds::parse(vec![]).unwrap_err();
        assert_eq!(err.field, "item_ids");
        let err = ItemIds::parse(vec!["x".into(); 1_001]).unwrap_err();
        assert_eq!(err.message, "must contain at most 1000 items");
        assert!(ItemIds::parse(vec!["x".into(); 1_000]).is_ok());
    }
}
