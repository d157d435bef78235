//! Entry point: parse the command line and run the chosen subcommand.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use order_processor::cli::{Cli, Command};
use order_processor::config::ServeConfig;
use order_processor::{app, seed, store, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.into_command() {
        Command::Serve(config) => serve(config).await,
        Command::Migrate(db) => {
            let store = store::connect(&db.database_url)
                .await
                .context("opening the database")?;
            store.migrate().await.context("applying migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed(db) => {
            let store = store::connect(&db.database_url)
                .await
                .context("opening the database")?;
            store.migrate().await.context("applying migrations")?;
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

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    config.validate()?;
    let store = store::connect(&config.database.database_url)
        .await
        .context("opening the database")?;
    store.migrate().await.context("applying migrations")?;
    let address = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    app::run(listener, store, &config, shutdown_signal()).await?;
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
