//! The load test's summary: throughput, latency percentiles, errors by status, checks,
//! as text for people or JSON for scripts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// How the accepted orders were processed.
#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    /// From the end of sending until every accepted order was Completed or Failed.
    pub seconds_after_sending: f64,
    pub completed: u64,
    pub failed: u64,
    /// Whether `/metrics` grew by exactly the completed and failed counts.
    pub metrics_agree: bool,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Everything the run found.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub accepted: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub latency_ms: Latency,
    /// Failed requests by status code (or `connection` / `timeout`).
    pub errors: BTreeMap<String, u64>,
    pub distinct_ids: bool,
    /// Accepted answers that did not echo what was sent.
    pub mismatched_answers: u64,
    pub drain: Option<Drain>,
    /// Orders processed per second, from the first request to the last completion.
    pub processed_per_second: Option<f64>,
    pub passed: bool,
}

impl Summary {
    pub fn new(
        latencies: &Histogram<u64>,
        elapsed: Duration,
        accepted: u64,
        errors: BTreeMap<String, u64>,
        distinct_ids: bool,
        mismatched_answers: u64,
        drain: Option<Drain>,
    ) -> Self {
        let ms = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
        let requests = latencies.len();
        let seconds = elapsed.as_secs_f64();
        let processed_per_second = drain.as_ref().map(|d| {
            (d.completed + d.failed) as f64 / (seconds + d.seconds_after_sending).max(1e-9)
        });
        let drained = drain
            .as_ref()
            .is_none_or(|d| d.completed + d.failed == accepted && d.metrics_agree);
        Self {
            requests,
            accepted,
            seconds,
            requests_per_second: requests as f64 / seconds.max(1e-9),
            latency_ms: Latency {
                p50: ms(0.50),
                p90: ms(0.90),
                p99: ms(0.99),
                p999: ms(0.999),
                max: latencies.max() as f64 / 1000.0,
            },
            passed: errors.is_empty() && distinct_ids && mismatched_answers == 0 && drained,
            errors,
            distinct_ids,
            mismatched_answers,
            drain,
            processed_per_second,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_ms;
        writeln!(
            f,
            "requests      {} in {:.2} s: {:.0} req/s",
            self.requests, self.seconds, self.requests_per_second
        )?;
        writeln!(
            f,
            "accepted      {} (201), ids distinct: {}, answers echoed: {}",
            self.accepted,
            yes(self.distinct_ids),
            yes(self.mismatched_answers == 0)
        )?;
        writeln!(
            f,
            "latency ms    p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        if self.errors.is_empty() {
            writeln!(f, "errors        none")?;
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            writeln!(f, "errors        {}", list.join(", "))?;
        }
        if let (Some(d), Some(rate)) = (&self.drain, self.processed_per_second) {
            writeln!(
                f,
                "processed     {} completed, {} failed (the last {:.2} s after sending ended): {:.0} orders/s",
                d.completed, d.failed, d.seconds_after_sending, rate
            )?;
            writeln!(
                f,
                "metrics       {}",
                if d.metrics_agree { "agree" } else { "DISAGREE" }
            )?;
        }
        write!(
            f,
            "result        {}",
            if self.passed { "PASS" } else { "FAIL" }
        )
    }
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_milliseconds() {
        let values: Vec<u64> = (1..=1000).map(|n| n * 1000).collect();
        let summary = Summary::new(
            &histogram(&values),
            Duration::from_secs(2),
            1000,
            BTreeMap::new(),
            true,
            0,
            None,
        );
        assert_eq!(summary.requests, 1000);
        assert!((summary.requests_per_second - 500.0).abs() < 1e-6);
        assert!((summary.latency_ms.p50 - 500.0).abs() < 1.0);
        assert!((summary.latency_ms.p99 - 990.0).abs() < 1.0);
        assert!((summary.latency_ms.max - 1000.0).abs() < 1.0);
        assert!(summary.passed);
    }

    #[test]
    fn any_error_or_failed_check_fails_the_run() {
        let h = histogram(&[1000]);
        let errors = BTreeMap::from([("500".to_owned(), 1)]);
        assert!(!Summary::new(&h, Duration::from_secs(1), 0, errors, true, 0, None).passed);
        assert!(
            !Summary::new(
                &h,
                Duration::from_secs(1),
                1,
                BTreeMap::new(),
                false,
                0,
                None
            )
            .passed
        );
        assert!(
            !Summary::new(
                &h,
                Duration::from_secs(1),
                1,
                BTreeMap::new(),
                true,
                1,
                None
            )
            .passed
        );
        let drain = Drain {
            seconds_after_sending: 1.0,
            completed: 1,
            failed: 0,
            metrics_agree: false,
        };
        assert!(
            !Summary::new(
                &h,
                Duration::from_secs(1),
                1,
                BTreeMap::new(),
                true,
                0,
                Some(drain)
            )
            .passed
        );
    }
}
