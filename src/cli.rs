//! The command line: `serve` (the default), `migrate` and `seed`.

use clap::{Parser, Subcommand};

use crate::config::{DatabaseConfig, LogFormat, ServeConfig};

/// Order-processing backend: an HTTP JSON API, a durable queue in the database,
/// and a worker pool.
#[derive(Debug, Parser)]
#[command(
    name = "order-processor",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Settings for `serve` when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeConfig,

    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and process orders (the default).
    Serve(ServeConfig),
    /// Apply database migrations and exit.
    Migrate(DatabaseConfig),
    /// Insert the 10 sample orders (idempotent) and exit.
    Seed(DatabaseConfig),
}

impl Cli {
    /// The subcommand to run, `serve` when none was named.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}
