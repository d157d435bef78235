//! Entry point: parse the command line and run the chosen subcommand.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use order_processor::cli::{Cli, Command};
use order_processor::config::{ConfigError, DatabaseConfig, ServeConfig};
use order_processor::store::Store;
use order_processor::{app, auth, loadtest, seed, store, telemetry};
use tokio_util::sync::CancellationToken;

/// jemalloc rather than the system allocator: in `bench/run`, glibc's malloc and free
/// were about a sixth of the CPU time of a `POST /orders`, and jemalloc served the same
/// load with a fifth less CPU per request (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start-up. Freed pages go back to the system after
/// half a second rather than ten, which lowered the peak resident memory under 1,000
/// connections. One arena rather than four per core: the process has a handful of
/// threads, each with its own cache of free blocks in front of the arena, and every
/// extra arena held its own partly used pages (more memory at that peak, and no less
/// CPU per request; BENCHMARKS.md has the figures).
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf =
    MallocConf(c"narenas:1,dirty_decay_ms:500,muzzy_decay_ms:0".as_ptr());

/// A C string pointer jemalloc reads once; it points at a literal, so sharing it
/// between threads is sound.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a `'static` literal that is never written.
unsafe impl Sync for MallocConf {}

/// Runs the command; an error ends the process with one line on stderr (never a
/// backtrace) and status 2 for a configuration that contradicts itself, as for a bad
/// flag, or 1 for anything else.
fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("starting the async runtime");
    if let Err(err) = runtime.block_on(run(cli)) {
        eprintln!("order-processor: {err:#}");
        let status = if err.downcast_ref::<ConfigError>().is_some() {
            2
        } else {
            1
        };
        std::process::exit(status);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.log_format);
    // One stop signal for the whole run, so a SIGTERM during start-up is not lost.
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    });
    match cli.into_command() {
        Command::Serve(config) => serve(*config, stop).await,
        Command::Loadtest(args) => {
            let json = args.json;
            let summary = loadtest::run(args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!("{summary}");
            }
            if !summary.passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Token(args) => {
            let reach = match (args.admin, args.read) {
                (true, _) => auth::Reach::Admin,
                (false, true) => auth::Reach::ReadAll,
                (false, false) => auth::Reach::Own,
            };
            let token = auth::mint(&args.auth, &args.user, reach, args.ttl)?;
            println!("{token}");
            Ok(())
        }
        Command::Migrate(db) => {
            let Some(_store) = open_store(&db, &stop).await? else {
                return Ok(());
            };
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed(db) => {
            let Some(store) = open_store(&db, &stop).await? else {
                return Ok(());
            };
            let samples = seed::sample_orders();
            let added = store
                .import(&samples)
                .await
                .context("inserting sample orders")?;
            tracing::info!(
                added,
                already_present = samples.len() as u64 - added,
                "seeded sample orders"
            );
            Ok(())
        }
    }
}

/// Connects (waiting for a database that is not up yet, which the log says) and
/// applies migrations. `None` if a stop signal came first.
async fn open_store(
    db: &DatabaseConfig,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Arc<dyn Store>>> {
    let connecting = store::connect_with_retry(&db.database_url, db.database_max_connections);
    let store = tokio::select! {
        store = connecting => store.context("opening the database")?,
        () = stop.cancelled() => return Ok(None),
    };
    tokio::select! {
        migrated = store.migrate() => migrated.context("applying migrations")?,
        () = stop.cancelled() => return Ok(None),
    }
    Ok(Some(store))
}

async fn serve(config: ServeConfig, stop: CancellationToken) -> anyhow::Result<()> {
    config.validate()?;
    // Checked before connecting, so a bad key fails the start at once.
    auth::Authenticator::from_config(&config.auth)?;
    let Some(store) = open_store(&config.database, &stop).await? else {
        return Ok(());
    };
    let address = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    app::run(listener, store, &config, stop.cancelled_owned()).await?;
    tracing::info!("stopped");
    Ok(())
}
/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
