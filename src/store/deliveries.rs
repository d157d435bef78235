//! What both backends' deliveries share above the SQL: which new deliveries may be due
//! at once, how a batch of attempts changes each endpoint's health, and why an
//! endpoint is disabled.

use std::collections::{BTreeMap, HashSet};

use super::{FinishedAttempt, NextStep, Owed};
use crate::domain::{DeliveryStatus, Timestamp, WebhookId};

/// Why an endpoint that answered `410 Gone` is disabled.
pub(super) const GONE: &str = "the endpoint answered 410 Gone";
/// Why an endpoint whose every attempt failed for too long is disabled.
pub(super) const FAILING: &str = "every delivery failed for WEBHOOK_DISABLE_AFTER";

/// For each delivery of a page, whether an earlier one of its order to its endpoint in
/// the page is still owed (pending, or not yet sent): an unsent delivery behind it
/// waits.
pub(super) fn behind_in_page(owed: &[Owed]) -> Vec<bool> {
    let mut owing = HashSet::new();
    owed.iter()
        .map(|o| {
            let chain = (o.delivery.order_id, o.delivery.endpoint_id);
            let behind = owing.contains(&chain);
            if !o.settled || o.delivery.status == DeliveryStatus::Pending {
                owing.insert(chain);
            }
            behind
        })
        .collect()
}

/// What a batch of recorded attempts does to one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HealthChange {
    pub id: WebhookId,
    /// The last success in the batch, if any.
    pub delivered_at: Option<Timestamp>,
    /// The first failure after the batch's last success (or in the whole batch, if
    /// none succeeded): where `failing_since` starts, if it is not running already.
    pub failing_from: Option<Timestamp>,
    /// When it answered `410`, if it did.
    pub gone_at: Option<Timestamp>,
    /// The batch's last attempt, when a disable takes effect.
    pub last_at: Timestamp,
}

/// Each endpoint's change from the attempts that were recorded (`applied`, beside
/// `attempts`), by endpoint id.
pub(super) fn health_changes(
    attempts: &[FinishedAttempt],
    applied: impl IntoIterator<Item = bool>,
) -> Vec<HealthChange> {
    let mut by_endpoint: BTreeMap<WebhookId, Vec<&FinishedAttempt>> = BTreeMap::new();
    for (attempt, applied) in attempts.iter().zip(applied) {
        if applied && attempt.reached {
            by_endpoint
                .entry(attempt.endpoint_id)
                .or_default()
                .push(attempt);
        }
    }
    by_endpoint
        .into_iter()
        .map(|(id, mut attempts)| {
            attempts.sort_by_key(|a| a.at);
            let delivered_at = attempts
                .iter()
                .filter(|a| a.next == NextStep::Delivered)
                .map(|a| a.at)
                .max();
            let failing_from = attempts
                .iter()
                .filter(|a| a.next != NextStep::Delivered)
                .map(|a| a.at)
                .find(|at| delivered_at.is_none_or(|ok| *at > ok));
            HealthChange {
                id,
                delivered_at,
                failing_from,
                gone_at: attempts.iter().filter(|a| a.gone).map(|a| a.at).min(),
                last_at: attempts.last().expect("a group holds an attempt").at,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{DeliveryId, from_millis};

    fn attempt(endpoint: WebhookId, at: i64, next: NextStep, gone: bool) -> FinishedAttempt {
        FinishedAttempt {
            id: DeliveryId::new_at(from_millis(at)),
            token: Uuid::new_v4(),
            endpoint_id: endpoint,
            at: from_millis(at),
            status_code: None,
            error: None,
            next,
            gone,
            reached: true,
        }
    }

    #[test]
    fn a_delivery_waits_only_behind_one_of_its_order_still_owed() {
        use crate::domain::{Delivery, EventType, Order, OrderEvent, event_id};
        let order: Order = crate::seed::sample_orders().remove(0);
        let hook = WebhookId::new_at(from_millis(1));
        let owed = |seq: u32, status: DeliveryStatus, settled: bool| {
            let event = OrderEvent {
                event_id: event_id(order.id, seq, order.created_at),
                order_id: order.id,
                seq,
                event_type: EventType::Created,
                occurred_at: order.created_at,
                position: i64::from(seq),
                order: order.clone(),
            };
            let mut delivery = Delivery::new(hook, &event, from_millis(2));
            delivery.status = status;
            Owed {
                delivery,
                settled,
                claim: None,
            }
        };
        let page = [
            owed(1, DeliveryStatus::Delivered, true),
            owed(2, DeliveryStatus::Pending, true),
            owed(3, DeliveryStatus::Pending, false),
            owed(4, DeliveryStatus::Pending, false),
        ];
        assert_eq!(behind_in_page(&page), [false, false, true, true]);
        assert_eq!(behind_in_page(&page[..1]), [false]);
        assert_eq!(
            behind_in_page(&[page[0].clone(), page[2].clone()]),
            [false, false],
            "a delivered one holds nothing up"
        );
    }

    #[test]
    fn health_counts_failures_only_after_the_last_success() {
        let (a, b) = (
            WebhookId::new_at(from_millis(1)),
            WebhookId::new_at(from_millis(2)),
        );
        let retry = NextStep::RetryAt(from_millis(10_000));
        let attempts = [
            attempt(a, 100, retry, false),
            attempt(a, 200, NextStep::Delivered, false),
            attempt(a, 300, NextStep::GiveUp, false),
            attempt(a, 400, retry, false),
            attempt(b, 150, NextStep::Delivered, false),
            attempt(b, 250, retry, true),
            // Not recorded (its claim was lost): changes nothing.
            attempt(b, 50, NextStep::Delivered, false),
        ];
        let changes = health_changes(&attempts, [true, true, true, true, true, true, false]);
        let of = |id| *changes.iter().find(|c| c.id == id).unwrap();
        assert_eq!(of(a).delivered_at, Some(from_millis(200)));
        assert_eq!(of(a).failing_from, Some(from_millis(300)));
        assert_eq!(of(a).gone_at, None);
        assert_eq!(of(a).last_at, from_millis(400));
        assert_eq!(of(b).delivered_at, Some(from_millis(150)));
        assert_eq!(of(b).failing_from, Some(from_millis(250)));
        assert_eq!(of(b).gone_at, Some(from_millis(250)));
    }
}
