//! Builds the service on a bound listener and runs it until a shutdown future resolves:
//! the HTTP server and the worker pool, started together and stopped in order.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api_load::ApiLoad;
use crate::auth::Authenticator;
use crate::background::{Background, Placement};
use crate::config::ServeConfig;
use crate::http::{self, AppState, Limiter, LiveFeed, Shared, Streams};
use crate::store::{Backoff, Engine, Store, StoreError};
use crate::worker::{HttpProcessor, Processor, SimulatedProcessor, WorkerPool};

/// Serves on `listener` until `shutdown` resolves, with the processor the
/// configuration names: the HTTP processor when `PROCESSOR_URL` is set, else the
/// simulated one.
pub async fn run(
    listener: TcpListener,
    store: Arc<dyn Store>,
    config: &ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let invalid = |err: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, err);
    let processor: Arc<dyn Processor> = match config
        .processing
        .http_processor()
        .map_err(|err| invalid(err.to_string()))?
    {
        Some((url, secret)) => {
            // Scheme, host and path: a query or user info may hold credentials.
            tracing::info!(endpoint = %format_args!("{}{}", url.origin().ascii_serialization(), url.path()),
                           "processing orders by calling PROCESSOR_URL");
            let connections = usize::from(config.processing.worker_concurrency);
            Arc::new(
                HttpProcessor::new(url, secret, connections)
                    .map_err(|err| invalid(format!("building the HTTP client: {err}")))?,
            )
        }
        None => Arc::new(SimulatedProcessor::new(
            config.processing.processing_time(),
            config.processing.processing_failure_rate,
        )),
    };
    run_with_processor(listener, store, processor, config, shutdown).await
}

/// Serves with a given processing step. On shutdown: stop accepting connections and
/// finish in-flight requests, while the pool stops claiming, lets in-flight
/// processing finish within the grace period and returns the rest to the queue.
pub async fn run_with_processor(
    listener: TcpListener,
    store: Arc<dyn Store>,
    processor: Arc<dyn Processor>,
    config: &ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Installed before anything records, so no early measurement is lost.
    crate::telemetry::prometheus();
    let stop = CancellationToken::new();
    // However this function ends (an error below, or its future dropped), the tasks it
    // spawns are told to stop.
    let _stop_on_exit = stop.clone().drop_guard();
    tokio::spawn(metrics_upkeep_until_stopped(stop.clone()));
    let pool = WorkerPool::new(
        store.clone(),
        processor,
        config.processing.worker_settings(),
    );
    let workers = tokio::spawn(pool.run_until_stopped(stop.clone()));
    tokio::spawn(prune_keys_until_stopped(
        store.clone(),
        config.requests.idempotency_ttl,
        stop.clone(),
    ));

    let api_load = ApiLoad::new(config.events.background_yield_at);
    tokio::spawn(api_load.clone().sample_until_stopped(stop.clone()));
    let background = start_background(store.clone(), config, api_load.clone(), stop.clone())?;

    let auth = Authenticator::from_config(&config.auth)
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?
        .map(Arc::new);
    if auth.is_none() {
        tracing::warn!(
            "authentication is OFF: anyone who can reach this port can create and read every \
             order; set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY to require bearer tokens"
        );
    }
    let feed = LiveFeed::start(store.clone(), stop.clone())
        .await
        .map_err(std::io::Error::other)?;
    let streams = Streams::new(
        feed,
        usize::try_from(config.streams.max_streams).unwrap_or(usize::MAX),
        Duration::from_millis(config.streams.sse_heartbeat_ms),
        Duration::from_millis(config.streams.sse_retry_ms),
        stop.clone(),
    );
    let state = AppState::new(Shared {
        store,
        auth,
        body_limit: config.requests.body_limit(),
        idempotency_ttl: config.requests.idempotency_ttl,
        idempotency_in_flight: Default::default(),
        rate_limiter: config
            .requests
            .rate_limit_per_sec
            .map(|rate| Limiter::new(rate, config.requests.rate_limit_burst.unwrap_or(rate))),
        orders_created: metrics::counter!("orders_created_total"),
        streams,
        webhook_network: config.webhooks.webhook_network(),
        api_load,
    });
    tracing::info!(address = %listener.local_addr()?, "listening");
    let stop_on_signal = stop.clone();
    if let Some(limiter) = state.rate_limiter.clone() {
        tokio::spawn(forget_idle_buckets_until_stopped(limiter, stop.clone()));
    }
    let serving = http::serve(
        listener,
        http::router(state),
        config.connections.serve_limits(),
        async move {
            shutdown.await;
            tracing::info!("shutdown requested: draining requests and workers");
            stop_on_signal.cancel();
        },
    );
    // A client that keeps a request open must not keep the process from exiting.
    let grace = Duration::from_millis(config.processing.shutdown_grace_ms);
    let served = tokio::select! {
        served = serving => served,
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("requests still open after the grace period; closing them");
            Ok(())
        }
    };
    // If serving failed, the workers must still stop and hand back their claims.
    stop.cancel();
    if let Err(err) = workers.await {
        tracing::error!(error = ?err, "worker pool ended abnormally");
    }
    // Deliveries in flight are recorded, or their timeout passes; either way they are
    // not lost (an unrecorded one is sent again).
    if !background.finished().await {
        tracing::error!("the background thread (webhooks, relay, retention) ended abnormally");
    }
    served
}

/// Starts the event log's consumers (webhook deliveries, and the NATS relay when
/// `EVENTS_NATS_URL` is set) and its retention on the background thread, at
/// `BACKGROUND_NICE` (at 0, on this runtime); the consumers step aside while `load`
/// says the API is busy. They end once `stop` is cancelled and their work in flight is
/// recorded.
fn start_background(
    store: Arc<dyn Store>,
    config: &ServeConfig,
    load: Arc<ApiLoad>,
    stop: CancellationToken,
) -> std::io::Result<Background> {
    let (nats, webhooks) = (config.events.nats(), config.webhooks.webhook_settings());
    let retention = config.events.event_retention;
    // The log's consumers switched on: retention waits for each of them.
    let mut consumers = vec![crate::webhooks::CONSUMER];
    consumers.extend(nats.as_ref().map(|_| crate::relay::CONSUMER));
    // The URL was checked when the store was opened from it.
    let sqlite = matches!(
        Engine::of(&config.database.database_url),
        Ok(Engine::Sqlite)
    );
    Background::start(
        config.events.background_nice(sqlite),
        move |placement| async move {
            let store = match placement {
                Placement::ApiRuntime => store,
                Placement::OwnThread => match background_store(store, &stop).await {
                    Some(store) => store,
                    None => return,
                },
            };
            let relay = nats.map(|nats| {
                tokio::spawn(crate::relay::relay_until_stopped(
                    store.clone(),
                    nats,
                    load.clone(),
                    stop.clone(),
                ))
            });
            tokio::spawn(prune_events_until_stopped(
                store.clone(),
                retention,
                consumers,
                stop.clone(),
            ));
            crate::webhooks::deliver_until_stopped(store, webhooks, load, stop.clone()).await;
            // Deliveries end early if their client cannot be built: the relay and
            // retention go on until the stop all the same.
            stop.cancelled().await;
            if let Some(relay) = relay {
                // The relay hands its lease back on stopping, unless NATS holds it up.
                let _ = tokio::time::timeout(RELAY_STOP_WAIT, relay).await;
            }
        },
    )
}

/// How long a stopping relay may wait for NATS before the process goes on exiting.
const RELAY_STOP_WAIT: Duration = Duration::from_secs(5);

/// The store as the background thread uses it, retried while the database cannot be
/// reached; `None` if stopped first.
async fn background_store(
    store: Arc<dyn Store>,
    stop: &CancellationToken,
) -> Option<Arc<dyn Store>> {
    let mut backoff = Backoff::default();
    loop {
        let err = match store.clone().for_background().await {
            Ok(store) => return Some(store),
            Err(err) => err,
        };
        let wait = backoff.next_wait();
        tracing::warn!(error = %err, retry_in_ms = wait.as_millis() as u64,
                       "the background thread cannot reach the database yet");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return None,
        }
    }
}

/// Forgets idempotency keys past their time to live, a few times per TTL.
async fn prune_keys_until_stopped(store: Arc<dyn Store>, ttl: Duration, stop: CancellationToken) {
    let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let before = crate::domain::now() - chrono::Duration::from_std(ttl).unwrap_or_default();
        match store.prune_keys(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "forgot expired idempotency keys"),
            Err(err) => tracing::warn!(error = %err, "pruning idempotency keys failed; will retry"),
        }
    }
}

/// Events looked at per statement: each is a short transaction, so neither the writer
/// (SQLite) nor any row lock (PostgreSQL) is held for long.
const PRUNE_WINDOW: usize = 1_000;

/// Deletes the events of orders finished longer than `retention` ago, a few times per
/// retention period (at most hourly): window after window through the old part of the
/// log, with a pause between windows; then the webhook deliveries done that long ago.
async fn prune_events_until_stopped(
    store: Arc<dyn Store>,
    retention: Duration,
    consumers: Vec<&'static str>,
    stop: CancellationToken,
) {
    let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3_600));
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let before =
            crate::domain::now() - chrono::Duration::from_std(retention).unwrap_or_default();
        // Events a consumer switched on (the NATS relay) has not seen yet are kept;
        // one that has not started yet has seen nothing. A consumer switched off does
        // not hold retention back.
        let keep_after = match store.consumer_positions().await {
            Ok(positions) => consumers
                .iter()
                .map(|name| {
                    positions
                        .iter()
                        .find(|(consumer, _)| consumer == name)
                        .map_or(0, |(_, position)| *position)
                })
                .min()
                .unwrap_or(i64::MAX),
            Err(err) => {
                tracing::warn!(error = %err, "reading the log's consumers failed; will retry");
                continue;
            }
        };
        let store = &store;
        let Some(pruned) = in_windows(&stop, "events", 0, |after| async move {
            let window = store
                .prune_events(before, after, PRUNE_WINDOW, keep_after)
                .await?;
            Ok((window.deleted, window.next_after))
        })
        .await
        else {
            return;
        };
        if pruned > 0 {
            tracing::info!(
                pruned,
                "deleted the events of orders finished past EVENT_RETENTION"
            );
        }
        // Webhook deliveries done (delivered, or failed for good) are kept as long.
        let Some(pruned) = in_windows(&stop, "webhook deliveries", (), |()| async move {
            let deleted = store.prune_deliveries(before, PRUNE_WINDOW).await?;
            Ok((deleted, (deleted >= PRUNE_WINDOW as u64).then_some(())))
        })
        .await
        else {
            return;
        };
        if pruned > 0 {
            tracing::info!(
                pruned,
                "deleted webhook deliveries done before EVENT_RETENTION"
            );
        }
    }
}

/// Deletes in windows until `window` answers no cursor to go on from, with a pause
/// between windows that leaves room for other writes; answers how many rows went
/// (a failure ends the round, to be tried again at the next), or `None` once `stop`
/// came.
async fn in_windows<C, F, Fut>(
    stop: &CancellationToken,
    what: &str,
    start: C,
    mut window: F,
) -> Option<u64>
where
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<(u64, Option<C>), StoreError>>,
{
    let (mut cursor, mut pruned) = (start, 0);
    loop {
        match window(cursor).await {
            Ok((deleted, next)) => {
                pruned += deleted;
                match next {
                    Some(next) => cursor = next,
                    None => return Some(pruned),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "pruning {what} failed; will retry");
                return Some(pruned);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            () = stop.cancelled() => return None,
        }
    }
}

/// Folds recorded histogram samples into their buckets every second. The exporter
/// otherwise keeps every sample until the next scrape: with nobody scraping
/// `/metrics/prometheus`, memory grew with every request (measured with heaptrack;
/// bench/NOTES.md).
async fn metrics_upkeep_until_stopped(stop: CancellationToken) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticks.tick() => crate::telemetry::prometheus().run_upkeep(),
            () = stop.cancelled() => return,
        }
    }
}

/// Drops rate-limit buckets of callers gone quiet, once a minute.
async fn forget_idle_buckets_until_stopped(limiter: Limiter, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = ticks.tick() => limiter.forget_idle(),
            () = stop.cancelled() => return,
        }
    }
}
