//! Names from the domain's closed lists (statuses, event types) written into a
//! statement's text, for both backends: where the value must be known when the statement
//! is planned (a partial index is chosen only for a constant), or is fixed by the
//! statement itself. Never client text: only these enums' own names get here.

use crate::domain::{EventType, OrderStatus};

/// A value with a name fixed at compile time, from one of the domain's lists.
pub(super) trait Named: Copy {
    fn name(self) -> &'static str;
}

impl Named for OrderStatus {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Named for EventType {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// The name as an SQL string literal: `'Completed'`, `'order.created'`.
pub(super) fn literal(value: impl Named) -> String {
    format!("'{}'", value.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quote or a backslash would end the literal early (or escape its end) in one
    /// dialect or the other.
    fn plain(name: &str) -> bool {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    }

    #[test]
    fn every_status_and_event_type_is_a_plain_quoted_literal() {
        for status in OrderStatus::ALL {
            assert!(plain(status.name()), "{status:?}");
        }
        for event in EventType::ALL {
            assert!(plain(event.name()), "{event:?}");
        }
        assert_eq!(literal(OrderStatus::Completed), "'Completed'");
        assert_eq!(literal(EventType::Created), "'order.created'");
    }
}
