//! How busy the API is, and the background work stepping aside for it. With
//! `BACKGROUND_YIELD_AT` set, the handlers count the time each new order waits for its
//! commit, a sampler turns that into the average waiting over its last step, and the
//! log's consumers (webhook deliveries, the NATS relay) wait before each page while
//! the average is high: a burst the machine cannot take at once goes to the API first,
//! and the consumers catch up once it eases. Writes waiting for their commit, not
//! requests in flight: a client sending its body slowly is in flight without loading
//! anything, and a steady load keeps many requests in flight on a slow host but few
//! writes waiting. An average over time (Little's law), not a count at one instant:
//! group commits answer their writes together, so the count swings from none to every
//! waiting write many times a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

mod step_aside;

pub use step_aside::StepAside;

/// How long a consumer steps aside before one page at most: while the API stays busy,
/// each consumer still reads a page this often, so what it owes never stops moving.
const YIELD_MAX: Duration = Duration::from_secs(1);
/// The sampler's step: the window each average is taken over, and how often a
/// consumer that steps aside looks again.
const STEP: Duration = Duration::from_millis(10);

/// The API's writes waiting for their commit, over time: the handlers mark each write's
/// start and end, a sampler averages them, the consumers read the average.
#[derive(Debug)]
pub struct ApiLoad {
    /// The average waiting at or above which consumers step aside; 0: never (and
    /// nothing is counted).
    yield_at: u32,
    /// The time everything here is counted from.
    epoch: Instant,
    /// Under one lock: a reader must never see a start or an end in one counter and
    /// not the other, which would move the sum by the whole time since `epoch`.
    counts: Mutex<Counts>,
    /// The average waiting over the sampler's last step, as `f64` bits.
    average: AtomicU64,
}

/// What the writes so far add up to.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// Writes that started and have not ended.
    waiting: i64,
    /// Each ended write's end minus each started write's start, in microseconds
    /// since the epoch.
    ends_minus_starts: i64,
}

impl Counts {
    fn start(&mut self, at: i64) {
        self.ends_minus_starts -= at;
        self.waiting += 1;
    }

    fn end(&mut self, at: i64) {
        self.ends_minus_starts += at;
        self.waiting -= 1;
    }

    /// Microseconds waiting, summed over every write, until `at`.
    fn busy_until(&self, at: i64) -> i64 {
        self.ends_minus_starts + self.waiting * at
    }
}

/// The writes waiting on average between two readings of `(busy, at)`.
fn average_between(from: (i64, i64), to: (i64, i64)) -> f64 {
    let window = (to.1 - from.1).max(1);
    (to.0 - from.0) as f64 / window as f64
}

/// One write waiting for its commit; its end is counted when it is dropped, whether it
/// was answered or its request was dropped (a write already handed to the store then
/// still commits, uncounted: a burst of clients that give up is undercounted).
#[derive(Debug)]
pub struct CountedWrite {
    load: Arc<ApiLoad>,
}

/// What a wait before a page came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waited {
    /// The API was not busy (or yielding is off).
    No,
    /// The consumer stepped aside.
    Yes,
    /// A stop came first.
    Stopped,
}

impl ApiLoad {
    /// Consumers step aside while the API has had `yield_at` writes waiting for their
    /// commit or more on average (`BACKGROUND_YIELD_AT`; 0 never).
    pub fn new(yield_at: u32) -> Arc<Self> {
        Arc::new(Self {
            yield_at,
            epoch: Instant::now(),
            counts: Mutex::new(Counts::default()),
            average: AtomicU64::new(0f64.to_bits()),
        })
    }

    /// Runs `write` (a new order on its way to its commit), counted as waiting until it
    /// ends; just `write` when yielding is off.
    pub async fn counting<F: IntoFuture>(self: &Arc<Self>, write: F) -> F::Output {
        let _counted = self.enter();
        write.await
    }

    /// Marks a write's start; its end is marked when the guard is dropped. `None`
    /// when yielding is off: then nothing is counted.
    fn enter(self: &Arc<Self>) -> Option<CountedWrite> {
        if self.yield_at == 0 {
            return None;
        }
        let mut counts = self.counts();
        counts.start(self.micros());
        drop(counts);
        Some(CountedWrite { load: self.clone() })
    }

    /// Averages the writes waiting over each step until `stop`; returns at once
    /// when yielding is off.
    pub async fn sample_until_stopped(self: Arc<Self>, stop: CancellationToken) {
        if self.yield_at == 0 {
            return;
        }
        let mut ticks = tokio::time::interval(STEP);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = self.reading();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => return,
            }
            let now = self.reading();
            let average = average_between(last, now);
            self.average.store(average.to_bits(), Ordering::Relaxed);
            // What an operator compares `BACKGROUND_YIELD_AT` with.
            metrics::gauge!("api_writes_waiting").set(average);
            last = now;
        }
    }

    /// The writes waiting on average over the sampler's last step.
    pub fn average(&self) -> f64 {
        f64::from_bits(self.average.load(Ordering::Relaxed))
    }

    /// Waits while the API is busy (its average waiting at `yield_at` or more), for
    /// `YIELD_MAX` at most. Returns at once when it is not busy or yielding is off.
    async fn wait_while_busy(&self, stop: &CancellationToken) -> Waited {
        if self.yield_at == 0 {
            return Waited::No;
        }
        let (started, busy) = (Instant::now(), f64::from(self.yield_at));
        let mut waited = Waited::No;
        while self.average() >= busy && started.elapsed() < YIELD_MAX {
            tokio::select! {
                () = tokio::time::sleep(STEP) => waited = Waited::Yes,
                () = stop.cancelled() => return Waited::Stopped,
            }
        }
        if waited == Waited::Yes {
            metrics::counter!("background_yields_total").increment(1);
        }
        waited
    }

    /// `(busy, at)`: the time waiting summed over every write until now, and now (read
    /// under the lock, so that a write counted meanwhile cannot fall outside it).
    fn reading(&self) -> (i64, i64) {
        let counts = self.counts();
        let at = self.micros();
        (counts.busy_until(at), at)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts are two integers: a panic elsewhere cannot leave them torn.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn micros(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
    }
}

impl Drop for CountedWrite {
    fn drop(&mut self) {
        let mut counts = self.load.counts();
        counts.end(self.load.micros());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(busy, at)` of `counts` at `at` microseconds.
    fn reading(counts: &Counts, at: i64) -> (i64, i64) {
        (counts.busy_until(at), at)
    }

    #[test]
    fn writes_waiting_for_a_whole_window_average_their_number() {
        let mut counts = Counts::default();
        (0..3).for_each(|_| counts.start(1_000));
        let from = reading(&counts, 2_000);
        assert_eq!(average_between(from, reading(&counts, 12_000)), 3.0);
    }

    #[test]
    fn a_write_counts_for_the_part_of_the_window_it_was_waiting() {
        let mut counts = Counts::default();
        let from = reading(&counts, 0);
        counts.start(2_500);
        counts.end(7_500);
        assert_eq!(average_between(from, reading(&counts, 10_000)), 0.5);
        // One that started before the window and ended within it.
        let mut counts = Counts::default();
        counts.start(0);
        let from = reading(&counts, 5_000);
        counts.end(7_500);
        assert_eq!(average_between(from, reading(&counts, 15_000)), 0.25);
    }

    #[test]
    fn ended_writes_leave_nothing_behind() {
        let mut counts = Counts::default();
        for at in [100, 200, 300] {
            counts.start(at);
            counts.end(at + 50);
        }
        let from = reading(&counts, 1_000);
        assert_eq!(average_between(from, reading(&counts, 2_000)), 0.0);
    }

    /// A load with its sampler running, and the stop that ends it.
    pub(super) fn sampled(yield_at: u32) -> (Arc<ApiLoad>, CancellationToken) {
        let load = ApiLoad::new(yield_at);
        let stop = CancellationToken::new();
        tokio::spawn(load.clone().sample_until_stopped(stop.clone()));
        (load, stop)
    }

    /// A sampled load with three writes held waiting, once the sampler has seen
    /// them for a few steps.
    pub(super) async fn busy(
        yield_at: u32,
    ) -> (Arc<ApiLoad>, CancellationToken, Vec<Option<CountedWrite>>) {
        let (load, stop) = sampled(yield_at);
        let held = (0..3).map(|_| load.enter()).collect();
        tokio::time::sleep(STEP * 5).await;
        (load, stop, held)
    }

    #[tokio::test]
    async fn a_write_is_counted_while_it_waits_for_its_commit_and_not_after() {
        let (load, stop) = sampled(1);
        let (commit, committed) = tokio::sync::oneshot::channel::<()>();
        let write = tokio::spawn({
            let load = load.clone();
            async move { load.counting(committed).await }
        });
        tokio::time::sleep(STEP * 5).await;
        assert!(load.average() > 0.5, "waiting: {}", load.average());
        commit.send(()).unwrap();
        write.await.unwrap().unwrap();
        tokio::time::sleep(STEP * 5).await;
        assert!(load.average() < 0.5, "ended: {}", load.average());
        stop.cancel();
    }

    #[tokio::test]
    async fn a_consumer_waits_while_the_api_is_busy_and_goes_on_once_it_is_not() {
        let (load, stop, held) = busy(2).await;
        let waiting = {
            let (load, stop) = (load.clone(), stop.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                assert_eq!(load.wait_while_busy(&stop).await, Waited::Yes);
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "steps aside while three are waiting"
        );
        drop(held);
        let waited = waiting.await.unwrap();
        assert!(
            waited >= Duration::from_millis(250) && waited < YIELD_MAX,
            "goes on once the load eased: {waited:?}"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn a_consumer_waits_no_longer_than_the_most_however_busy_the_api() {
        let (load, stop, _held) = busy(1).await;
        let started = Instant::now();
        let waited_for = load.wait_while_busy(&CancellationToken::new()).await;
        assert_eq!(waited_for, Waited::Yes);
        let waited = started.elapsed();
        assert!(waited >= YIELD_MAX && waited < YIELD_MAX * 3, "{waited:?}");
        stop.cancel();
    }

    #[tokio::test]
    async fn a_quiet_api_costs_a_consumer_no_wait() {
        let (load, stop) = sampled(2);
        tokio::time::sleep(STEP * 5).await;
        let started = Instant::now();
        assert_eq!(load.wait_while_busy(&stop).await, Waited::No);
        assert!(started.elapsed() < STEP, "nothing waiting");
        stop.cancel();
    }

    #[tokio::test]
    async fn with_yielding_off_nothing_is_counted_and_nothing_waits() {
        let load = ApiLoad::new(0);
        assert!(load.enter().is_none());
        let stop = CancellationToken::new();
        load.clone().sample_until_stopped(stop.clone()).await;
        let started = Instant::now();
        assert_eq!(load.wait_while_busy(&stop).await, Waited::No);
        assert!(started.elapsed() < STEP);
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_and_says_so() {
        let (load, stop, _held) = busy(1).await;
        let stopping = CancellationToken::new();
        stopping.cancel();
        assert_eq!(load.wait_while_busy(&stopping).await, Waited::Stopped);
        stop.cancel();
    }
}
