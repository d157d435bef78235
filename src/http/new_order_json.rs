//! The body of `POST /orders`: a client's new order, read field by field (never
//! through a float for money) into the domain's types, and its OpenAPI description.

use std::fmt;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::domain::{FieldError, ItemIds, Money, NewOrder, UserId};

/// A new order's body: a JSON object whose three fields are kept as raw text, borrowed
/// from the request, until checked. Other members are skipped, and a member sent twice
/// counts by its last value (as a map of the members would have it), so nothing about
/// the body is allocated before its fields are checked.
#[derive(Debug, Default)]
pub struct RawBody<'a> {
    user_id: Option<&'a RawValue>,
    item_ids: Option<&'a RawValue>,
    total_amount: Option<&'a RawValue>,
}

impl<'a> RawBody<'a> {
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        match name {
            "user_id" => self.user_id,
            "item_ids" => self.item_ids,
            "total_amount" => self.total_amount,
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawBody<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawBodyVisitor)
    }
}

struct RawBodyVisitor;

impl<'de> Visitor<'de> for RawBodyVisitor {
    type Value = RawBody<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawBody<'de>, M::Error> {
        let mut body = RawBody::default();
        while let Some(member) = map.next_key::<Member>()? {
            let slot = match member {
                Member::UserId => &mut body.user_id,
                Member::ItemIds => &mut body.item_ids,
                Member::TotalAmount => &mut body.total_amount,
                Member::Other => {
                    // Taken raw (borrowed, not copied) rather than skipped, so that its
                    // text is checked for valid UTF-8 like the rest of the body.
                    map.next_value::<&RawValue>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(body)
    }
}

/// A member's name, told apart without copying it (an escaped name is decoded first).
enum Member {
    UserId,
    ItemIds,
    TotalAmount,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Member;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a member name")
            }

            fn visit_str<E>(self, name: &str) -> Result<Member, E> {
                Ok(match name {
                    "user_id" => Member::UserId,
                    "item_ids" => Member::ItemIds,
                    "total_amount" => Member::TotalAmount,
                    _ => Member::Other,
                })
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

/// Checks each field's JSON type, then the domain's rules, and reports every offending
/// field at once (422). With a `subject` (the token's user), `user_id` may be left out,
/// and if present must be the subject (403).
pub fn parse_new_order(body: &RawBody<'_>, subject: Option<&str>) -> Result<NewOrder, ApiError> {
    let user_id = match (subject, present(body, "user_id")) {
        (Some(subject), Err(_)) => UserId::parse(subject.to_owned())
            .map_err(|_| FieldError::new("user_id", "the token's subject is not a valid user_id")),
        _ => field::<String>(body, "user_id", "must be a string").and_then(UserId::parse),
    };
    let item_ids = field::<Vec<String>>(body, "item_ids", "must be an array of strings")
        .and_then(ItemIds::parse);
    let total_amount = amount(body);
    let (user_id, item_ids, total_amount) = match (user_id, item_ids, total_amount) {
        (Ok(user_id), Ok(item_ids), Ok(total_amount)) => (user_id, item_ids, total_amount),
        (user_id, item_ids, total_amount) => {
            let errors = [user_id.err(), item_ids.err(), total_amount.err()];
            return Err(ApiError::Validation(errors.into_iter().flatten().collect()));
        }
    };
    if subject.is_some_and(|subject| subject != user_id.as_str()) {
        return Err(ApiError::Forbidden(
            "user_id must be the token's own user (or left out)".into(),
        ));
    }
    Ok(NewOrder {
        user_id,
        item_ids,
        total_amount,
    })
}

/// A present, non-null field of the expected JSON type.
fn field<T: DeserializeOwned>(
    body: &RawBody<'_>,
    name: &str,
    type_message: &str,
) -> Result<T, FieldError> {
    let raw = present(body, name)?;
    serde_json::from_str(raw.get()).map_err(|_| FieldError::new(name, type_message))
}

fn present<'a>(body: &RawBody<'a>, name: &str) -> Result<&'a RawValue, FieldError> {
    match body.get(name) {
        Some(raw) if raw.get() != "null" => Ok(raw),
        _ => Err(FieldError::new(name, "is required")),
    }
}

/// `total_amount` from the exact text of the JSON number: never through a float.
fn amount(body: &RawBody<'_>) -> Result<Money, FieldError> {
    const NAME: &str = "total_amount";
    let text = present(body, NAME)?.get();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(FieldError::new(NAME, "must be a number"));
    }
    Money::parse_decimal(text).map_err(|err| FieldError::new(NAME, err.to_string()))
}

/// The body of `POST /orders`. It documents the contract; the handler reads the body
/// field by field itself, to name every fault and to keep money out of floats.
#[derive(ToSchema)]
#[expect(dead_code, reason = "Only its schema is used.")]
pub struct NewOrderRequest {
    /// Required without authentication. With it, optional; if given, it must be the
    /// token's subject.
    #[schema(min_length = 1, max_length = 255, example = "user1")]
    user_id: Option<String>,
    /// 1 to 1,000 item ids of 1 to 255 characters, kept in the order sent.
    #[schema(min_items = 1, max_items = 1000, example = json!(["item1", "item2"]))]
    item_ids: Vec<String>,
    /// Greater than 0, at most 2 decimal places, at most 999999999.99.
    #[schema(
        exclusive_minimum = 0,
        maximum = 999999999.99,
        multiple_of = 0.01,
        example = 100.5
    )]
    total_amount: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawBody<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_body_keeps_its_three_fields_raw_and_skips_other_members() {
        let body = raw(
            r#"{"note": {"a": [1]}, "user_id": "u1", "item_ids": ["a", "b"],
                          "total_amount": 100.50, "extra": null}"#,
        );
        assert_eq!(body.get("user_id").unwrap().get(), r#""u1""#);
        assert_eq!(body.get("item_ids").unwrap().get(), r#"["a", "b"]"#);
        assert_eq!(body.get("total_amount").unwrap().get(), "100.50");
        // A field's name inside another member is not the field.
        let nested = raw(r#"{"note": {"user_id": "x"}, "total_amount": 1}"#);
        assert!(nested.get("user_id").is_none());
        assert_eq!(nested.get("total_amount").unwrap().get(), "1");
    }

    #[test]
    fn invalid_utf8_anywhere_in_the_body_is_malformed_json() {
        let mut body = br#"{"user_id": "u", "note": ""#.to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(br#"", "total_amount": 1}"#);
        let err = serde_json::from_slice::<RawBody<'_>>(&body).unwrap_err();
        assert_eq!(err.classify(), serde_json::error::Category::Syntax);
    }

    #[test]
    fn a_member_sent_twice_counts_by_its_last_value_and_escaped_names_are_decoded() {
        let body = raw(r#"{"user_id": "first", "user\u005fid": "last"}"#);
        assert_eq!(body.get("user_id").unwrap().get(), r#""last""#);
    }

    #[test]
    fn only_an_object_is_a_body() {
        for json in ["[]", "1", r#""text""#, "null"] {
            let err = serde_json::from_str::<RawBody<'_>>(json).unwrap_err();
            assert_eq!(err.classify(), serde_json::error::Category::Data, "{json}");
        }
    }
}
