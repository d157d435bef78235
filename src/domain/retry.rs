//! The retry policy: exponential backoff with jitter, and when to give up.

use std::time::Duration;

use super::Timestamp;

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts allowed before an order is dead-lettered as `Failed`.
    pub max_attempts: u32,
    /// Backoff ceiling after the first failure; it doubles with each further one.
    pub base: Duration,
    /// Largest backoff ceiling, however many failures.
    pub max: Duration,
}

/// What happens to an order after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Back to `Pending`, not to be claimed before this time.
    RetryAt(Timestamp),
    /// The attempts are used up: `Failed`, the dead-letter state.
    DeadLetter,
}

impl RetryPolicy {
    /// The backoff ceiling after `attempts` failed attempts: `base * 2^(attempts-1)`,
    /// capped at `max`.
    pub fn ceiling(&self, attempts: u32) -> Duration {
        2u32.checked_pow(attempts.saturating_sub(1))
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.max, |ceiling| ceiling.min(self.max))
    }

    /// The delay before the next attempt, "equal jitter": half the ceiling plus a
    /// random part of the other half (`jitter` in `[0, 1]`). Failed orders therefore
    /// spread out instead of retrying in lock-step, while (below the cap) each delay
    /// stays at least as long as the one before.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let half = self.ceiling(attempts) / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Decides what follows the `attempts`-th failed attempt at `now`.
    pub fn after_failure(&self, attempts: u32, now: Timestamp, jitter: f64) -> AfterFailure {
        if attempts >= self.max_attempts {
            return AfterFailure::DeadLetter;
        }
        let delay = chrono::Duration::from_std(self.delay(attempts, jitter))
            .unwrap_or(chrono::Duration::MAX);
        // Millisecond precision, like every stored time.
        let at = now.checked_add_signed(delay).unwrap_or(now);
        AfterFailure::RetryAt(super::from_millis(at.timestamp_millis()))
    }

    /// `after`, the retry moved to no sooner than `wait` past `now`: the processing
    /// step asked for that (`Retry-After`). The wait is capped at `max`, so an endpoint
    /// cannot park an order for longer than the backoff ever would.
    pub fn not_before(&self, after: AfterFailure, now: Timestamp, wait: Duration) -> AfterFailure {
        match after {
            AfterFailure::RetryAt(at) => {
                let wait =
                    chrono::Duration::from_std(wait.min(self.max)).unwrap_or(chrono::Duration::MAX);
                let earliest = now.checked_add_signed(wait).unwrap_or(now);
                AfterFailure::RetryAt(at.max(super::from_millis(earliest.timestamp_millis())))
            }
            AfterFailure::DeadLetter => AfterFailure::DeadLetter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(1000),
        max: Duration::from_millis(300_000),
    };

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_maximum() {
        assert_eq!(POLICY.ceiling(1), Duration::from_secs(1));
        assert_eq!(POLICY.ceiling(2), Duration::from_secs(2));
        assert_eq!(POLICY.ceiling(5), Duration::from_secs(16));
        assert_eq!(POLICY.ceiling(9), Duration::from_secs(256));
        assert_eq!(POLICY.ceiling(10), Duration::from_secs(300));
        assert_eq!(POLICY.ceiling(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn jitter_keeps_the_delay_between_half_and_all_of_the_ceiling() {
        assert_eq!(POLICY.delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(POLICY.delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(POLICY.delay(3, 0.5), Duration::from_secs(3));
        assert_eq!(POLICY.delay(3, 7.0), Duration::from_secs(4), "clamped");
    }

    #[test]
    fn below_the_cap_delays_never_shrink_from_one_attempt_to_the_next() {
        // Ceilings 1, 2, ... 256 s; the 10th would be capped at 300 s.
        for attempts in 1..9 {
            assert!(POLICY.delay(attempts, 1.0) <= POLICY.delay(attempts + 1, 0.0));
        }
    }

    #[test]
    fn the_last_allowed_attempt_dead_letters() {
        let now = super::super::from_millis(1_000_000);
        assert_eq!(
            POLICY.after_failure(1, now, 0.0),
            AfterFailure::RetryAt(super::super::from_millis(1_000_500))
        );
        assert_eq!(POLICY.after_failure(5, now, 0.3), AfterFailure::DeadLetter);
        assert_eq!(POLICY.after_failure(6, now, 0.3), AfterFailure::DeadLetter);
    }

    #[test]
    fn a_wait_asked_for_delays_the_retry_up_to_the_cap_and_never_brings_it_forward() {
        let now = crate::domain::from_millis(1_000_000);
        let at = |ms: i64| AfterFailure::RetryAt(crate::domain::from_millis(1_000_000 + ms));
        assert_eq!(
            POLICY.not_before(at(500), now, Duration::from_secs(2)),
            at(2_000)
        );
        assert_eq!(
            POLICY.not_before(at(5_000), now, Duration::from_secs(2)),
            at(5_000)
        );
        assert_eq!(
            POLICY.not_before(at(500), now, Duration::from_secs(86_400)),
            at(300_000),
            "capped at the largest backoff"
        );
        assert_eq!(
            POLICY.not_before(AfterFailure::DeadLetter, now, Duration::from_secs(2)),
            AfterFailure::DeadLetter
        );
    }
}
