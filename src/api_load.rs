//! How busy the API is, and the background work stepping aside for it: the HTTP layer
//! counts the time each request is in flight, and the log's consumers (webhook
//! deliveries, the NATS relay) wait before each page while the API has had many
//! requests in flight on average, so that a burst the cores cannot take at once goes
//! to the API first and deliveries catch up once it eases. The average is over time
//! (requests in flight integrated over a window, Little's law), not a sample: group
//! commits answer their requests together, so the count in flight swings from
//! nothing to every waiting client many times a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How long a consumer steps aside before one page at most: while the API stays busy,
/// each consumer still reads a page this often, so what it owes never stops moving.
pub const YIELD_MAX: Duration = Duration::from_secs(1);
/// How often a consumer that steps aside looks again, and the shortest window an
/// average is taken over.
const STEP: Duration = Duration::from_millis(10);
/// A reading older than this says nothing of now (a consumer that waited for the log
/// for a while): the count in flight at this instant stands in for the average,
/// and a window starts afresh.
const STALE: Duration = Duration::from_millis(100);

/// The API's requests in flight over time. Shared by the HTTP layer, which marks each
/// request's start and end, and the consumers, which read averages from it.
#[derive(Debug)]
pub struct ApiLoad {
    /// The time everything here is counted from.
    epoch: Instant,
    /// Requests that started and have not ended.
    in_flight: AtomicI64,
    /// Each ended request's end minus each started request's start, in microseconds
    /// since `epoch`: with `in_flight × now` added, the time spent in flight by every
    /// request so far (`busy_until`).
    ends_minus_starts: AtomicI64,
    /// The average in flight at or above which consumers step aside; 0: never.
    yield_at: u32,
}

/// One request in flight; its end is counted when it is dropped, whether the request
/// was answered or its client went away.
#[derive(Debug)]
pub struct InFlight {
    load: Arc<ApiLoad>,
}

/// Where a consumer last read the load: the next average is over the time since.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    busy: i64,
    at: i64,
    /// The average over the last window long enough to count.
    average: f64,
}

impl ApiLoad {
    /// Consumers step aside while the API has had `yield_at` requests in flight or
    /// more on average (`BACKGROUND_YIELD_AT`; 0 never).
    pub fn new(yield_at: u32) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            in_flight: AtomicI64::new(0),
            ends_minus_starts: AtomicI64::new(0),
            yield_at,
        })
    }

    /// Marks a request's start; its end is marked when the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        let now = self.micros();
        self.ends_minus_starts.fetch_sub(now, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { load: self.clone() }
    }

    /// A reading to take averages from, starting now.
    pub fn reading(&self) -> Reading {
        let at = self.micros();
        Reading {
            busy: self.busy_until(at),
            at,
            average: 0.0,
        }
    }

    /// The requests in flight on average since `reading` (then moved to now); if that
    /// is shorter than a step, the average it last took; if it is stale, the count in
    /// flight now.
    pub fn average_since(&self, reading: &mut Reading) -> f64 {
        let at = self.micros();
        let window = at - reading.at;
        if window > micros(STALE) {
            *reading = Reading {
                busy: self.busy_until(at),
                at,
                average: self.in_flight.load(Ordering::Relaxed) as f64,
            };
        } else if window >= micros(STEP) {
            let busy = self.busy_until(at);
            reading.average = (busy - reading.busy) as f64 / window as f64;
            reading.busy = busy;
            reading.at = at;
        }
        reading.average
    }

    /// Waits while the API has been busy (its average in flight at `yield_at` or
    /// more), for `YIELD_MAX` at most, or until `stop`. Returns at once when it is not
    /// busy, or when yielding is off.
    pub async fn yield_to_requests(&self, reading: &mut Reading, stop: &CancellationToken) {
        if self.yield_at == 0 {
            return;
        }
        let started = Instant::now();
        let at = f64::from(self.yield_at);
        while self.average_since(reading) >= at && started.elapsed() < YIELD_MAX {
            tokio::select! {
                () = tokio::time::sleep(STEP) => {}
                () = stop.cancelled() => return,
            }
        }
        if started.elapsed() >= STEP {
            metrics::counter!("background_yields_total").increment(1);
        }
    }

    /// Microseconds in flight, summed over every request, until `at`. Two loads, not
    /// one: a request starting or ending between them moves the sum by its own share
    /// of one instant, nothing an average over a step notices.
    fn busy_until(&self, at: i64) -> i64 {
        self.ends_minus_starts.load(Ordering::Relaxed) + self.in_flight.load(Ordering::Relaxed) * at
    }

    fn micros(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.load.micros();
        self.load
            .ends_minus_starts
            .fetch_add(now, Ordering::Relaxed);
        self.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_is_the_requests_in_flight_over_the_window() {
        let load = ApiLoad::new(4);
        let mut reading = load.reading();
        let held: Vec<InFlight> = (0..3).map(|_| load.enter()).collect();
        std::thread::sleep(Duration::from_millis(40));
        let average = load.average_since(&mut reading);
        assert!((2.5..=3.0).contains(&average), "three in flight: {average}");
        drop(held);
        std::thread::sleep(Duration::from_millis(40));
        assert!(load.average_since(&mut reading) < 0.1, "none in flight");
    }

    #[test]
    fn a_request_counts_only_while_it_is_in_flight() {
        let load = ApiLoad::new(4);
        let mut reading = load.reading();
        let started = Instant::now();
        let request = load.enter();
        std::thread::sleep(Duration::from_millis(20));
        drop(request);
        let inside = started.elapsed();
        std::thread::sleep(Duration::from_millis(20));
        let average = load.average_since(&mut reading);
        let expected = inside.as_secs_f64() / started.elapsed().as_secs_f64();
        assert!(
            (average - expected).abs() < 0.05,
            "in flight {expected:.2} of the window, averaged {average:.2}"
        );
    }

    #[test]
    fn a_window_shorter_than_a_step_keeps_the_last_average() {
        let load = ApiLoad::new(4);
        let mut reading = load.reading();
        let _held: Vec<InFlight> = (0..5).map(|_| load.enter()).collect();
        std::thread::sleep(STEP * 2);
        let average = load.average_since(&mut reading);
        let read_at = (Instant::now(), reading.at);
        assert!(average > 4.0, "{average}");
        let again = load.average_since(&mut reading);
        // Only if this thread was not held up for a whole step in between.
        if read_at.0.elapsed() < STEP {
            assert_eq!(
                (again, reading.at),
                (average, read_at.1),
                "too short to count"
            );
        }
    }

    #[test]
    fn a_stale_reading_gives_the_count_in_flight_now_and_starts_a_window() {
        let load = ApiLoad::new(4);
        let mut reading = load.reading();
        std::thread::sleep(STALE + STEP);
        let held: Vec<InFlight> = (0..6).map(|_| load.enter()).collect();
        assert_eq!(
            load.average_since(&mut reading),
            6.0,
            "not diluted by the quiet before"
        );
        drop(held);
        std::thread::sleep(STEP * 2);
        assert!(
            load.average_since(&mut reading) < 0.5,
            "the new window is the quiet since"
        );
    }

    #[tokio::test]
    async fn a_consumer_waits_while_the_api_is_busy_and_goes_on_once_it_is_not() {
        let load = ApiLoad::new(2);
        let stop = CancellationToken::new();
        let held: Vec<InFlight> = (0..3).map(|_| load.enter()).collect();
        let mut reading = load.reading();
        tokio::time::sleep(STEP * 2).await;
        let waiting = {
            let load = load.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                load.yield_to_requests(&mut reading, &stop).await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !waiting.is_finished(),
            "steps aside while three are in flight"
        );
        drop(held);
        let waited = waiting.await.unwrap();
        assert!(
            waited >= Duration::from_millis(190) && waited < YIELD_MAX,
            "goes on once the load eased: {waited:?}"
        );
    }

    #[tokio::test]
    async fn a_consumer_waits_no_longer_than_the_most_however_busy_the_api() {
        let load = ApiLoad::new(1);
        let _held: Vec<InFlight> = (0..3).map(|_| load.enter()).collect();
        let mut reading = load.reading();
        tokio::time::sleep(STEP * 2).await;
        let started = Instant::now();
        load.yield_to_requests(&mut reading, &CancellationToken::new())
            .await;
        let waited = started.elapsed();
        assert!(
            waited >= YIELD_MAX && waited < YIELD_MAX + Duration::from_millis(500),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn a_quiet_api_or_yielding_off_costs_a_consumer_no_wait() {
        let stop = CancellationToken::new();
        let quiet = ApiLoad::new(2);
        let mut reading = quiet.reading();
        tokio::time::sleep(STEP * 2).await;
        let started = Instant::now();
        quiet.yield_to_requests(&mut reading, &stop).await;
        assert!(started.elapsed() < STEP, "nothing in flight");

        let off = ApiLoad::new(0);
        let _held: Vec<InFlight> = (0..100).map(|_| off.enter()).collect();
        let mut reading = off.reading();
        tokio::time::sleep(STEP * 2).await;
        let started = Instant::now();
        off.yield_to_requests(&mut reading, &stop).await;
        assert!(started.elapsed() < STEP, "yielding off");
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait() {
        let load = ApiLoad::new(1);
        let _held: Vec<InFlight> = (0..3).map(|_| load.enter()).collect();
        let mut reading = load.reading();
        tokio::time::sleep(STEP * 2).await;
        let stop = CancellationToken::new();
        stop.cancel();
        let started = Instant::now();
        load.yield_to_requests(&mut reading, &stop).await;
        assert!(started.elapsed() < STEP * 3);
    }
}
