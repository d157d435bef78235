//! One consumer of the log stepping aside for a burst, for a bounded time: once it has
//! trailed the log for `MAX_TRAIL` it reads on, however busy the API, until it has
//! caught up. So a load that keeps many orders waiting for long (or commits that are
//! slow for good) delays deliveries by that much, not without end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{ApiLoad, Waited};

/// How long a consumer may trail the log because it stepped aside before it reads on
/// regardless: longer than a burst, short enough for a delivery that late to be news.
const MAX_TRAIL: Duration = Duration::from_secs(10);

/// A consumer's stepping aside: asked before each page, told when the log is caught up.
#[derive(Debug)]
pub struct StepAside {
    load: Arc<ApiLoad>,
    max_trail: Duration,
    /// When it first stepped aside since it last caught up with the log.
    trailing_since: Option<Instant>,
}

impl StepAside {
    pub fn new(load: Arc<ApiLoad>) -> Self {
        Self::with_max_trail(load, MAX_TRAIL)
    }

    fn with_max_trail(load: Arc<ApiLoad>, max_trail: Duration) -> Self {
        Self {
            load,
            max_trail,
            trailing_since: None,
        }
    }

    /// Before a page: waits while the API is busy, unless this consumer has trailed for
    /// `MAX_TRAIL` already. `false` if `stop` came first.
    pub async fn before_page(&mut self, stop: &CancellationToken) -> bool {
        if self
            .trailing_since
            .is_some_and(|since| since.elapsed() >= self.max_trail)
        {
            return !stop.is_cancelled();
        }
        let asked = Instant::now();
        match self.load.wait_while_busy(stop).await {
            Waited::Stopped => false,
            Waited::Yes => {
                // Trailing from when it began to step aside, not from when it stopped.
                self.trailing_since.get_or_insert(asked);
                true
            }
            Waited::No => true,
        }
    }

    /// The consumer reached the end of the log (a page shorter than a full one, or none),
    /// or gave up its place in it (another instance holds it now): it may step aside
    /// again, and its trail starts afresh the next time it does.
    pub fn reset(&mut self) {
        self.trailing_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{YIELD_MAX, tests::busy};
    use super::*;

    #[tokio::test]
    async fn a_consumer_that_trailed_for_the_limit_reads_on_until_it_catches_up() {
        let (load, stop, _held) = busy(1).await;
        let mut aside = StepAside::with_max_trail(load, Duration::from_millis(200));
        let never = CancellationToken::new();
        let timed = |started: Instant| started.elapsed();

        // Busy: it steps aside, the most it may before one page, and now trails.
        let started = Instant::now();
        assert!(aside.before_page(&never).await);
        assert!(timed(started) >= YIELD_MAX, "{:?}", timed(started));
        // Trailed past the limit: it reads on at once, however busy the API still is.
        let started = Instant::now();
        assert!(aside.before_page(&never).await);
        assert!(timed(started) < YIELD_MAX / 2, "{:?}", timed(started));
        // Caught up with the log: it steps aside again.
        aside.reset();
        let started = Instant::now();
        assert!(aside.before_page(&never).await);
        assert!(timed(started) >= YIELD_MAX, "{:?}", timed(started));
        stop.cancel();
    }

    #[tokio::test]
    async fn past_the_limit_a_stop_is_still_answered() {
        let (load, stop, _held) = busy(1).await;
        let mut aside = StepAside::with_max_trail(load, Duration::ZERO);
        let never = CancellationToken::new();
        assert!(aside.before_page(&never).await);
        stop.cancel();
        assert!(!aside.before_page(&stop).await);
    }
}
