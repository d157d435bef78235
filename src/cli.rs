//! The command line: `serve` (the default), `migrate`, `seed`, `token` and `loadtest`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::AuthConfig;
use crate::config::{DatabaseConfig, LogFormat, ServeConfig, parse_duration};
use crate::loadtest::LoadtestArgs;

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
    Serve(Box<ServeConfig>),
    /// Apply database migrations and exit.
    Migrate(DatabaseConfig),
    /// Insert the 10 sample orders (idempotent) and exit.
    Seed(DatabaseConfig),
    /// Print a bearer token signed with AUTH_JWT_SECRET, for development and examples.
    Token(TokenArgs),
    /// Drive a running service with orders, measure, verify, and report.
    Loadtest(LoadtestArgs),
}

/// What `token` mints.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user the token speaks for (its `sub`).
    #[arg(long)]
    pub user: String,

    /// Add the `orders:admin` scope: read and change everything (any order, dead
    /// letters, webhook endpoints, metrics).
    #[arg(long, conflicts_with = "read")]
    pub admin: bool,

    /// Add the `orders:read` scope: read everything an admin reads, change nothing
    /// (an operator's read-only view).
    #[arg(long)]
    pub read: bool,

    /// How long the token is valid: a number with s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,

    #[command(flatten)]
    pub auth: AuthConfig,
}

impl Cli {
    /// The subcommand to run, `serve` when none was named.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(Box::new(self.serve)))
    }
}
