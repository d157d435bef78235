//! Gathering idle workers before a claim, so that one claim (one statement, one
//! commit) serves as many of them as can be had without keeping any waiting long.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Adds every other idle worker to `idle`. When most of the `concurrency` workers are
/// busy, it first waits up to `wait` for half of them to be free: orders completed
/// together free their workers one by one, and claiming for each as it came made most
/// claims one or two orders, each a statement and a commit of its own (bench/NOTES.md).
/// When most workers are idle, it takes them at once.
pub(super) async fn gather_idle_workers(
    permits: &Arc<Semaphore>,
    idle: &mut OwnedSemaphorePermit,
    concurrency: usize,
    wait: Duration,
) {
    let half = concurrency / 2;
    if idle.num_permits() + permits.available_permits() < half {
        let wanted = u32::try_from(half - idle.num_permits()).unwrap_or(u32::MAX);
        // On timeout, permits the wait had gathered go back to the semaphore, and are
        // taken below.
        if let Ok(more) =
            tokio::time::timeout(wait, permits.clone().acquire_many_owned(wanted)).await
        {
            idle.merge(more.expect("never closed"));
        }
    }
    let rest = u32::try_from(permits.available_permits()).unwrap_or(u32::MAX);
    if rest > 0
        && let Ok(more) = permits.clone().try_acquire_many_owned(rest)
    {
        idle.merge(more);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::{OwnedSemaphorePermit, Semaphore};
    use tokio::task::JoinHandle;

    use super::gather_idle_workers;

    const WAIT: Duration = Duration::from_millis(2);

    #[tokio::test(start_paused = true)]
    async fn with_most_workers_idle_it_takes_them_all_at_once() {
        let permits = Arc::new(Semaphore::new(10));
        let _busy = permits.clone().acquire_many_owned(4).await.unwrap();
        let mut idle = permits.clone().acquire_owned().await.unwrap();
        let started = tokio::time::Instant::now();
        gather_idle_workers(&permits, &mut idle, 10, WAIT).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(idle.num_permits(), 6);
        assert_eq!(permits.available_permits(), 0);
    }

    /// Ten workers: one idle (the permit returned), nine busy, of which `finishing` come
    /// free one at a time after 1 ms. The task returns the permits still busy.
    async fn one_idle_while(
        finishing: usize,
    ) -> (
        Arc<Semaphore>,
        OwnedSemaphorePermit,
        JoinHandle<OwnedSemaphorePermit>,
    ) {
        let permits = Arc::new(Semaphore::new(10));
        let mut busy = permits.clone().acquire_many_owned(9).await.unwrap();
        let idle = permits.clone().acquire_owned().await.unwrap();
        let finishing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            for _ in 0..finishing {
                drop(busy.split(1));
                tokio::task::yield_now().await;
            }
            busy
        });
        (permits, idle, finishing)
    }

    #[tokio::test(start_paused = true)]
    async fn with_most_workers_busy_it_waits_for_half_of_them() {
        // Four workers finish within the wait; the rest stay busy.
        let (permits, mut idle, finishing) = one_idle_while(4).await;
        let started = tokio::time::Instant::now();
        gather_idle_workers(&permits, &mut idle, 10, WAIT).await;
        // It claims as soon as half are free, not at the end of the wait.
        assert!(started.elapsed() < WAIT);
        assert_eq!(idle.num_permits(), 5);
        assert_eq!(finishing.await.unwrap().num_permits(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn when_too_few_come_free_it_claims_for_those_after_the_wait() {
        let (permits, mut idle, finishing) = one_idle_while(2).await;
        let started = tokio::time::Instant::now();
        gather_idle_workers(&permits, &mut idle, 10, WAIT).await;
        assert_eq!(started.elapsed(), WAIT);
        // The two that came free during the wait are not lost to the timeout.
        assert_eq!(idle.num_permits(), 3);
        assert_eq!(permits.available_permits(), 0);
        drop(finishing.await.unwrap());
    }
}
