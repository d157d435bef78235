//! Order statuses, event types and delivery statuses on the wire: their OpenAPI enums and the
//! `order_counts` object, built from `OrderStatus::ALL` and `EventType::ALL`, so a new
//! status or type appears in each without an edit here.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::{DeliveryStatus, EventType, OrderStatus, StatusCounts};

/// A string enum of `names`, for a list the domain keeps.
fn string_enum(description: &str, names: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(names))
        .into()
}

/// The statuses of an order's lifecycle, as a string enum.
impl PartialSchema for OrderStatus {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "The statuses of an order's lifecycle.",
            OrderStatus::ALL.map(OrderStatus::as_str),
        )
    }
}

impl ToSchema for OrderStatus {
    // The component's name since the first published document.
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("StatusName")
    }
}

/// The types of events an order's log holds, as a string enum.
impl PartialSchema for EventType {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "The types of events an order's log holds.",
            EventType::ALL.map(EventType::as_str),
        )
    }
}

impl ToSchema for EventType {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EventTypeName")
    }
}

/// Where a webhook delivery stands, as a string enum.
impl PartialSchema for DeliveryStatus {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "Where a webhook delivery stands.",
            DeliveryStatus::ALL.map(DeliveryStatus::as_str),
        )
    }
}

impl ToSchema for DeliveryStatus {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DeliveryStatusName")
    }
}

/// "must be one of pending, delivered, failed": the deliveries listing's message.
pub fn one_of_the_delivery_statuses() -> String {
    let names: Vec<&str> = DeliveryStatus::ALL.map(DeliveryStatus::as_str).to_vec();
    format!("must be one of {}", names.join(", "))
}

/// "must be one of Pending, Processing, ...": the listing's message for a bad status.
pub fn one_of_the_statuses() -> String {
    let names: Vec<&str> = OrderStatus::ALL.map(OrderStatus::as_str).to_vec();
    format!("must be one of {}", names.join(", "))
}

/// `{"Pending": 1, "Processing": 0, ...}`: every status present, zero or not, in
/// lifecycle order.
#[derive(Debug)]
pub struct OrderCounts(pub StatusCounts);

impl Serialize for OrderCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(OrderStatus::ALL.len()))?;
        for (status, count) in self.0.iter() {
            map.serialize_entry(status.as_str(), &count)?;
        }
        map.end()
    }
}

impl PartialSchema for OrderCounts {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Every status is present, zero or not, in lifecycle order.",
            ));
        for status in OrderStatus::ALL {
            let count = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0));
            object = object
                .property(status.as_str(), count)
                .required(status.as_str());
        }
        object.into()
    }
}

impl ToSchema for OrderCounts {}

/// `{"order.created": 3, "order.processing": 0, ...}`: every event type present, zero
/// or not, in `EventType::ALL` order.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventCounts(pub [u64; EventType::ALL.len()]);

impl EventCounts {
    /// Adds `n` events of `event_type`.
    pub fn add(&mut self, event_type: EventType, n: u64) {
        let index = EventType::ALL
            .iter()
            .position(|t| *t == event_type)
            .expect("every type is in ALL");
        self.0[index] += n;
    }
}

impl Serialize for EventCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(EventType::ALL.len()))?;
        for (event_type, count) in EventType::ALL.iter().zip(self.0) {
            map.serialize_entry(event_type.as_str(), &count)?;
        }
        map.end()
    }
}

impl PartialSchema for EventCounts {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("Every event type is present, zero or not."));
        for event_type in EventType::ALL {
            let count = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0));
            object = object
                .property(event_type.as_str(), count)
                .required(event_type.as_str());
        }
        object.into()
    }
}

impl ToSchema for EventCounts {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_serialise_every_status_in_lifecycle_order() {
        let mut counts = StatusCounts::default();
        counts.add(OrderStatus::Completed, 3);
        let json = serde_json::to_string(&OrderCounts(counts)).unwrap();
        let expected: Vec<String> = OrderStatus::ALL
            .iter()
            .map(|s| {
                let n = if *s == OrderStatus::Completed { 3 } else { 0 };
                format!("\"{s}\":{n}")
            })
            .collect();
        assert_eq!(json, format!("{{{}}}", expected.join(",")));
    }

    #[test]
    fn the_schemas_name_every_status() {
        let status = serde_json::to_value(OrderStatus::schema()).unwrap();
        let counts = serde_json::to_value(OrderCounts::schema()).unwrap();
        for s in OrderStatus::ALL {
            assert!(
                status["enum"]
                    .as_array()
                    .unwrap()
                    .contains(&s.as_str().into())
            );
            assert!(counts["properties"][s.as_str()].is_object(), "{s}");
            assert!(
                counts["required"]
                    .as_array()
                    .unwrap()
                    .contains(&s.as_str().into())
            );
        }
    }
}
