//! The worker pool: claims `Pending` orders from the store, processes them outside any
//! transaction under leases kept alive by heartbeats, completes them under their claim,
//! rescues expired leases, and stops gracefully.

mod gather;
mod http_processor;
mod job;
mod leases;
mod processor;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use http_processor::HttpProcessor;
pub use processor::{ProcessingError, Processor, SimulatedProcessor};

use crate::domain::{RetryPolicy, now};
use crate::store::Store;
use gather::gather_idle_workers;
use job::Job;
use leases::{InFlight, keep_leases_until_stopped};

/// How the pool behaves; built from the configuration.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Most orders processed at once.
    pub concurrency: usize,
    /// How long a claim holds before another worker may take the order back.
    pub lease: Duration,
    /// Fallback poll when no wake-up arrives (work from another process, rescued leases).
    pub poll_interval: Duration,
    /// How long in-flight processing may run on after a stop is asked for.
    pub shutdown_grace: Duration,
    /// Longest one processing attempt may take before it is cancelled as failed.
    pub processing_timeout: Duration,
    /// Backoff between failed attempts, and when to give up.
    pub retry: RetryPolicy,
}

/// A pool of workers sharing one store.
pub struct WorkerPool {
    store: Arc<dyn Store>,
    processor: Arc<dyn Processor>,
    settings: WorkerSettings,
    new_work: Arc<Notify>,
    /// Claims being processed now: their leases are kept alive, and a stop hands back
    /// the unfinished ones.
    in_flight: InFlight,
}

/// Longest a claim waits for busy workers to come free, so that it claims for many.
const CLAIM_GATHER: Duration = Duration::from_millis(2);

/// Wait before retrying after the store failed, so an outage is not a busy loop.
const STORE_ERROR_BACKOFF: Duration = Duration::from_millis(500);

impl WorkerPool {
    /// Idle workers wake on the store's new-work signal, and poll as a fallback.
    pub fn new(
        store: Arc<dyn Store>,
        processor: Arc<dyn Processor>,
        settings: WorkerSettings,
    ) -> Self {
        let new_work = store.new_work();
        Self {
            store,
            processor,
            settings,
            new_work,
            in_flight: InFlight::default(),
        }
    }

    /// Claims and processes orders until `stop` is cancelled, then waits up to the
    /// grace period for in-flight orders and returns the rest to the queue.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut tasks = JoinSet::new();
        let rescuer = tokio::spawn(rescue_until_stopped(
            self.store.clone(),
            self.settings.clone(),
            stop.clone(),
        ));
        // Heartbeats go on after a stop is asked for, while in-flight attempts finish.
        let leases_kept = CancellationToken::new();
        let heartbeat = tokio::spawn(keep_leases_until_stopped(
            self.store.clone(),
            self.in_flight.clone(),
            self.settings.lease,
            leases_kept.clone(),
        ));
        info!(
            concurrency = self.settings.concurrency,
            lease_ms = self.settings.lease.as_millis() as u64,
            processing_timeout_ms = self.settings.processing_timeout.as_millis() as u64,
            "worker pool started"
        );

        loop {
            while let Some(joined) = tasks.try_join_next() {
                log_task_end(joined);
            }
            let mut idle = tokio::select! {
                // Biased: once a stop is asked for, no further claim is made even when a
                // worker is free at the same moment.
                biased;
                () = stop.cancelled() => break,
                permit = permits.clone().acquire_owned() => permit.expect("never closed"),
            };
            gather_idle_workers(&permits, &mut idle, self.settings.concurrency, CLAIM_GATHER).await;
            if stop.is_cancelled() {
                // Asked to stop while gathering: still no further claim.
                break;
            }
            // Claim as many orders as there are idle workers, in one transaction.
            match self
                .store
                .claim(idle.num_permits(), now(), self.settings.lease)
                .await
            {
                Ok(claims) if !claims.is_empty() => {
                    for claim in claims {
                        let permit = idle.split(1).expect("one idle worker per claimed order");
                        let lost = self.in_flight.hold(&claim);
                        let job = Job {
                            store: self.store.clone(),
                            processor: self.processor.clone(),
                            in_flight: self.in_flight.clone(),
                            retry: self.settings.retry,
                            timeout: self.settings.processing_timeout,
                            new_work: self.new_work.clone(),
                        };
                        tasks.spawn(async move {
                            job.run(claim, lost).await;
                            drop(permit);
                        });
                    }
                    // Workers the queue had no order for are idle again.
                    drop(idle);
                }
                Ok(_) => {
                    drop(idle);
                    tokio::select! {
                        biased;
                        () = stop.cancelled() => break,
                        () = self.new_work.notified() => {}
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                    }
                }
                Err(err) => {
                    drop(idle);
                    error!(error = ?err, "claiming orders failed; backing off");
                    tokio::select! {
                        () = tokio::time::sleep(STORE_ERROR_BACKOFF) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
        }

        info!(
            in_flight = tasks.len(),
            "worker pool stopping: no new claims"
        );
        let drained = tokio::time::timeout(self.settings.shutdown_grace, async {
            while let Some(joined) = tasks.join_next().await {
                log_task_end(joined);
            }
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        leases_kept.cancel();
        let _ = heartbeat.await;
        self.release_unfinished().await;
        let _ = rescuer.await;
        info!("worker pool stopped");
    }

    /// Hands every claim still in flight back to the queue, so the next start (or
    /// another instance) processes it without waiting for the lease to run out.
    async fn release_unfinished(&self) {
        for claim in self.in_flight.take_all() {
            match self.store.release(&claim, now()).await {
                Ok(_) => {
                    info!(order_id = %claim.order.id, "returned unfinished order to the queue")
                }
                Err(err) => warn!(
                    order_id = %claim.order.id, error = ?err,
                    "could not return unfinished order; its lease will expire instead"
                ),
            }
        }
    }
}

fn log_task_end(joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined
        && !err.is_cancelled()
    {
        error!(error = ?err, "worker task ended abnormally");
    }
}

/// Periodically takes back orders whose lease expired (their worker died): to the
/// queue, or to `Failed` when their attempts are used up.
async fn rescue_until_stopped(
    store: Arc<dyn Store>,
    settings: WorkerSettings,
    stop: CancellationToken,
) {
    // Checking a few times per lease bounds how long past its expiry an order waits.
    let every = (settings.lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        match store
            .rescue_expired(now(), settings.retry.max_attempts)
            .await
        {
            Ok(rescued) if rescued == Default::default() => {}
            Ok(rescued) => {
                metrics::counter!("order_dead_letters_total").increment(rescued.dead_lettered);
                warn!(
                    requeued = rescued.requeued,
                    dead_lettered = rescued.dead_lettered,
                    "returned orders with expired leases to the queue"
                );
            }
            Err(err) => error!(error = ?err, "lease rescue failed; will try again"),
        }
    }
}
