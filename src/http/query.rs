//! Query strings, read the same way on every route: every parameter checked, unknown
//! ones refused (a misspelt filter must not silently widen an answer), and every fault
//! named in one `400`.

use std::collections::HashMap;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::error::ApiError;
use crate::domain::FieldError;

/// A query string as name → value.
pub type Params = HashMap<String, String>;

/// The query, or a `400` naming why it could not be read.
pub fn read(query: Result<Query<Params>, QueryRejection>) -> Result<Params, ApiError> {
    query.map(|Query(params)| params).map_err(|rejection| {
        ApiError::InvalidQuery(vec![FieldError::new("query", rejection.body_text())])
    })
}

/// A query's parameters being checked: the faults found so far, unknown names first.
pub struct Checked<'a> {
    params: &'a Params,
    errors: Vec<FieldError>,
}

impl<'a> Checked<'a> {
    /// Starts checking `params`, of which only `known` may appear.
    pub fn new(params: &'a Params, known: &[&str]) -> Self {
        let errors = params
            .keys()
            .filter(|key| !known.contains(&key.as_str()))
            .map(|key| FieldError::new(key.clone(), "is not a known parameter"))
            .collect();
        Self { params, errors }
    }

    /// The value of `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&'a String> {
        self.params.get(name)
    }

    /// Notes a fault of one parameter.
    pub fn fault(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// `limit`: an integer from 1 to `max`, `default` when absent.
    pub fn limit(&mut self, default: usize, max: usize) -> usize {
        match self.get("limit").map(|text| text.parse::<usize>()) {
            None => default,
            Some(Ok(limit)) if (1..=max).contains(&limit) => limit,
            Some(_) => {
                self.fault(FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {max}"),
                ));
                default
            }
        }
    }

    /// `cursor`: a cursor this service issued (the last id of the page before).
    pub fn cursor(&mut self) -> Option<Uuid> {
        let text = self.get("cursor")?;
        let decoded = URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| Uuid::from_slice(&bytes).ok());
        if decoded.is_none() {
            self.fault(FieldError::new(
                "cursor",
                "is not a cursor this service issued",
            ));
        }
        decoded
    }

    /// `value` if no parameter was at fault, else every fault, by parameter name.
    pub fn finish<T>(mut self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            self.errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(self.errors)
        }
    }
}

/// The cursor of the page after the one ending at `last`: opaque to clients, the
/// base64url of the id's bytes. Listings are keyed by time-ordered ids.
pub fn cursor_after(last: &Uuid) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

/// Query parameters from pairs, for the parsers' tests.
#[cfg(test)]
pub fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
