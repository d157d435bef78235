//! How the events read from the log are cut into batches published together: at most
//! `BATCH` long, and at most one event of any order, so a batch sent again after a
//! failure cannot put an order's events out of order.

use std::collections::HashSet;

use crate::domain::OrderEvent;

/// Most events awaiting their acknowledgements at once.
const BATCH: usize = 256;

/// Consecutive runs of events, each at most `BATCH` long and holding at most one event
/// of any order.
pub(super) fn batches(events: &[OrderEvent]) -> Vec<&[OrderEvent]> {
    let mut batches = Vec::new();
    let (mut start, mut orders) = (0, HashSet::new());
    for (n, event) in events.iter().enumerate() {
        if n - start == BATCH || !orders.insert(event.order_id) {
            batches.push(&events[start..n]);
            start = n;
            orders.clear();
            orders.insert(event.order_id);
        }
    }
    if start < events.len() {
        batches.push(&events[start..]);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventType, Order, event_id};

    /// Events of the sample orders, in this order of orders (each order's seq counted).
    fn events_of(orders: &[&Order]) -> Vec<OrderEvent> {
        let mut seqs = std::collections::HashMap::new();
        orders
            .iter()
            .enumerate()
            .map(|(n, order)| {
                let seq = seqs.entry(order.id).or_insert(0);
                *seq += 1;
                OrderEvent {
                    event_id: event_id(order.id, *seq, order.created_at),
                    order_id: order.id,
                    seq: *seq,
                    event_type: EventType::Created,
                    occurred_at: order.created_at,
                    position: n as i64 + 1,
                    order: (*order).clone(),
                }
            })
            .collect()
    }

    #[test]
    fn a_batch_holds_at_most_one_event_of_an_order_and_keeps_the_log_order() {
        let samples = crate::seed::sample_orders();
        let [a, b, c] = [&samples[0], &samples[1], &samples[2]];
        let events = events_of(&[a, b, a, c, b, b, c]);
        let positions: Vec<Vec<i64>> = batches(&events)
            .iter()
            .map(|batch| batch.iter().map(|e| e.position).collect())
            .collect();
        assert_eq!(positions, [vec![1, 2], vec![3, 4, 5], vec![6, 7]]);
        let many: Vec<&Order> = (0..BATCH + 4).map(|n| &samples[n % 2]).collect();
        let alternating = events_of(&many);
        assert!(batches(&alternating).iter().all(|batch| batch.len() == 2));
        let distinct: Vec<Order> = (0..BATCH + 1)
            .map(|n| Order {
                id: crate::domain::OrderId::new_at(
                    samples[0].created_at + chrono::Duration::milliseconds(n as i64),
                ),
                ..samples[0].clone()
            })
            .collect();
        let refs: Vec<&Order> = distinct.iter().collect();
        let lengths: Vec<usize> = batches(&events_of(&refs)).iter().map(|b| b.len()).collect();
        assert_eq!(lengths, [BATCH, 1]);
    }
}
