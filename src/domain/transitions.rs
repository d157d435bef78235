//! The order state machine: which transitions exist and what causes each, in one table
//! that the store conformance suite holds every backend to.

use super::{EventType, OrderStatus};

/// What moves an order from one status to another: one store operation each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// A worker claims a due order under a lease.
    Claim,
    /// The worker holding the claim finishes the order.
    Complete,
    /// An attempt failed with attempts left: back to the queue after a backoff.
    FailAndRetry,
    /// An attempt failed with none left: dead-lettered.
    FailAndDeadLetter,
    /// The worker hands its claim back unprocessed (a stop).
    Release,
    /// A lease ran out with attempts left: back to the queue.
    RescueAndRequeue,
    /// A lease ran out with none left: dead-lettered.
    RescueAndDeadLetter,
    /// An operator puts a dead letter back in the queue with a fresh budget.
    OperatorRetry,
    /// The shop (or an operator) calls off an order that is not being worked on.
    Cancel,
}

impl Cause {
    /// Every cause; the conformance suite applies each to an order in every status.
    pub const ALL: [Cause; 9] = [
        Self::Claim,
        Self::Complete,
        Self::FailAndRetry,
        Self::FailAndDeadLetter,
        Self::Release,
        Self::RescueAndRequeue,
        Self::RescueAndDeadLetter,
        Self::OperatorRetry,
        Self::Cancel,
    ];

    /// Where this cause takes an order in `from`, or `None` if it does not apply there
    /// (the store then changes nothing).
    pub fn applied_to(self, from: OrderStatus) -> Option<OrderStatus> {
        TRANSITIONS
            .iter()
            .find(|t| t.cause == self && t.from == from)
            .map(|t| t.to)
    }

    /// The event this cause writes to the order's log when it applies.
    pub fn event_type(self) -> EventType {
        match self {
            Self::Claim => EventType::Processing,
            Self::Complete => EventType::Completed,
            Self::FailAndRetry => EventType::AttemptFailed,
            Self::FailAndDeadLetter | Self::RescueAndDeadLetter => EventType::Failed,
            Self::Release | Self::RescueAndRequeue => EventType::Requeued,
            Self::OperatorRetry => EventType::Retried,
            Self::Cancel => EventType::Cancelled,
        }
    }
}

/// One legal move of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub cause: Cause,
}

const fn transition(from: OrderStatus, cause: Cause, to: OrderStatus) -> Transition {
    Transition { from, to, cause }
}

/// Every transition an order can make, and what causes it: the one place that says
/// so. Each backend writes the SQL of each cause, and the store conformance suite
/// applies every cause to an order in every status on every backend, holding the
/// backends to this table: a cause moves an order only along its rows.
pub const TRANSITIONS: &[Transition] = {
    use Cause::*;
    use OrderStatus::*;
    &[
        transition(Pending, Claim, Processing),
        transition(Processing, Complete, Completed),
        transition(Processing, FailAndRetry, Pending),
        transition(Processing, FailAndDeadLetter, Failed),
        transition(Processing, Release, Pending),
        transition(Processing, RescueAndRequeue, Pending),
        transition(Processing, RescueAndDeadLetter, Failed),
        transition(Failed, OperatorRetry, Pending),
        transition(Pending, Cancel, Cancelled),
        transition(Failed, Cancel, Cancelled),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_takes_an_order_in_one_status_to_one_status() {
        for (i, a) in TRANSITIONS.iter().enumerate() {
            for b in &TRANSITIONS[i + 1..] {
                assert!(a.cause != b.cause || a.from != b.from, "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn every_status_is_reachable_and_only_completed_and_cancelled_are_terminal() {
        let mut reached = vec![OrderStatus::Pending];
        while let Some(next) = TRANSITIONS
            .iter()
            .find(|t| reached.contains(&t.from) && !reached.contains(&t.to))
        {
            reached.push(next.to);
        }
        assert_eq!(reached.len(), OrderStatus::ALL.len(), "reached {reached:?}");
        for status in OrderStatus::ALL {
            let way_out = TRANSITIONS.iter().any(|t| t.from == status);
            let terminal = matches!(status, OrderStatus::Completed | OrderStatus::Cancelled);
            assert_eq!(way_out, !terminal, "{status}");
            assert_eq!(status.is_terminal(), terminal, "{status}");
        }
    }

    #[test]
    fn causes_apply_only_where_the_table_says() {
        use OrderStatus::*;
        assert_eq!(Cause::Claim.applied_to(Pending), Some(Processing));
        assert_eq!(Cause::Complete.applied_to(Pending), None);
        assert_eq!(Cause::OperatorRetry.applied_to(Failed), Some(Pending));
        assert_eq!(Cause::OperatorRetry.applied_to(Completed), None);
        assert_eq!(Cause::Cancel.applied_to(Failed), Some(Cancelled));
        assert_eq!(Cause::Cancel.applied_to(Processing), None);
        let listed = Cause::ALL
            .iter()
            .filter(|c| TRANSITIONS.iter().any(|t| t.cause == **c));
        assert_eq!(listed.count(), Cause::ALL.len(), "every cause has a row");
    }
}
