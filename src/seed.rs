//! The reference system's 10 sample orders, with fixed ids so seeding twice adds nothing.

use crate::domain::{ItemIds, Money, Order, OrderId, OrderStatus, UserId, from_millis};

/// 2026-01-15T10:00:00Z: the samples are placed in the past, a minute apart.
const FIRST_CREATED_MS: i64 = 1_768_471_200_000;

/// (user, items, amount in cents, processing seconds if completed)
const SAMPLES: [(&str, &[&str], i64, Option<i64>); 10] = [
    ("user1", &["item1", "item2"], 10_050, Some(1)),
    ("user2", &["item3"], 2_599, Some(2)),
    ("user3", &["item4", "item5", "item6"], 15_000, Some(1)),
    ("user1", &["item7"], 999, Some(3)),
    ("user4", &["item2", "item8"], 4_250, Some(2)),
    ("user5", &["item9"], 7_500, Some(5)),
    ("user2", &["item1", "item10"], 12_000, None),
    ("user3", &["item11"], 3_000, None),
    ("user4", &["item12", "item13"], 6_075, None),
    ("user5", &["item14"], 1_999, None),
];

/// The sample orders: six `Completed` with realistic `completed_at`, four `Pending`.
pub fn sample_orders() -> Vec<Order> {
    SAMPLES
        .iter()
        .zip(0i64..)
        .map(|(&(user, items, cents, processing_secs), index)| {
            let created_ms = FIRST_CREATED_MS + index * 60_000;
            // Fixed random bits: the same sample always has the same UUIDv7.
            let mut random = [0x5e_u8; 10];
            random[9] = u8::try_from(index).expect("ten samples");
            let id = uuid::Builder::from_unix_timestamp_millis(
                u64::try_from(created_ms).expect("positive"),
                &random,
            )
            .into_uuid();
            Order {
                id: OrderId::from_uuid(id),
                user_id: UserId::parse(user.into()).expect("valid sample"),
                item_ids: ItemIds::parse(items.iter().map(|s| (*s).to_owned()).collect())
                    .expect("valid sample"),
                total_amount: Money::from_cents(cents).expect("valid sample"),
                status: if processing_secs.is_some() {
                    OrderStatus::Completed
                } else {
                    OrderStatus::Pending
                },
                created_at: from_millis(created_ms),
                completed_at: processing_secs.map(|s| from_millis(created_ms + s * 1000)),
                attempts: u32::from(processing_secs.is_some()),
                last_error: None,
                failed_at: None,
                next_attempt_at: processing_secs.is_none().then(|| from_millis(created_ms)),
                cancelled_at: None,
                cancel_reason: None,
                result: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_ten_distinct_orders_mixing_pending_and_completed() {
        let orders = sample_orders();
        assert_eq!(orders.len(), 10);
        let ids: std::collections::HashSet<_> = orders.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), 10);
        let completed = orders
            .iter()
            .filter(|o| o.status == OrderStatus::Completed)
            .count();
        assert_eq!(completed, 6);
        assert!(
            orders
                .iter()
                .all(|o| o.completed_at.is_some() == (o.status == OrderStatus::Completed))
        );
    }

    #[test]
    fn samples_are_the_same_every_time() {
        assert_eq!(sample_orders(), sample_orders());
    }
}
