//! The command line: `serve` (the default), `migrate`, `seed` and `token`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::AuthConfig;
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
    /// Print a bearer token signed with AUTH_JWT_SECRET, for development and examples.
    Token(TokenArgs),
}

/// What `token` mints.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user the token speaks for (its `sub`).
    #[arg(long)]
    pub user: String,

    /// Add the `orders:admin` scope: read any order, metrics, listings; retry dead letters.
    #[arg(long)]
    pub admin: bool,

    /// How long the token is valid: a number with s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,

    #[command(flatten)]
    pub auth: AuthConfig,
}

/// `90s`, `15m`, `12h`, `7d`.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a number followed by s, m, h or d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} does not end in s, m, h or d")),
    };
    if number == 0 || number > 365 * 86_400 / seconds {
        return Err(format!("{text:?} must be between one second and a year"));
    }
    Ok(Duration::from_secs(number * seconds))
}

impl Cli {
    /// The subcommand to run, `serve` when none was named.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_take_a_unit() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_ttl("10").is_err());
        assert!(parse_ttl("0m").is_err());
        assert!(parse_ttl("400d").is_err());
        assert!(parse_ttl("").is_err());
    }
}
