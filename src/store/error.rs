//! The storage layer's errors: what went wrong, and whether retrying later may help.

/// A failure of the storage layer. Client mistakes never reach here: they are
/// refused before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is refusing work for now (down, restarting,
    /// pool exhausted, locked): worth retrying later.
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    #[error("database error")]
    Database(#[source] BoxError),
    /// A write that was part of a group commit, or a read coalesced with others, and
    /// the failure of the statement that held it.
    #[error("a statement shared with other callers failed: {0:?}")]
    Shared(SharedFailure),
    /// The SQLite writer thread has stopped, or panicked on this write.
    #[error("the SQLite writer failed this write or has stopped")]
    WriterStopped,
    /// A read handed to another thread did not come back (it panicked).
    #[error("a read failed: {0}")]
    ReadFailed(String),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    /// A status without its running-totals row would be counted into nothing.
    #[error(
        "the running totals (order_stats) have no row for {0}: the migration that adds a \
         status must add its row"
    )]
    MissingStatusTotals(String),
    #[error("the database schema is at migration {applied:?}; this build needs {needed}")]
    SchemaBehind { applied: Option<i64>, needed: i64 },
    #[error(
        "DATABASE_URL names an in-memory SQLite database; the service needs a file \
         (sqlite://PATH)"
    )]
    InMemory,
    #[error("DATABASE_URL must start with sqlite:// or postgres:// (it starts with {0:?})")]
    UnsupportedUrl(String),
}

/// The cause of a database error, whichever driver raised it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_transient(&err) {
            Self::Unavailable(Box::new(err))
        } else {
            Self::Database(Box::new(err))
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        // The write lock held past the busy timeout (another process writing): not now,
        // rather than never.
        let busy = matches!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        if busy {
            Self::Unavailable(Box::new(err))
        } else {
            Self::Database(Box::new(err))
        }
    }
}

impl StoreError {
    /// Whether PostgreSQL refused the statement as a serialization failure (the event
    /// log's ordering trigger, migration 0005): running it again at once succeeds.
    pub fn is_serialization_failure(&self) -> bool {
        let Self::Unavailable(cause) = self else {
            return false;
        };
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|err| err.as_database_error())
            .is_some_and(|db| db.code().as_deref() == Some("40001"))
    }

    /// Whether retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Shared(SharedFailure::Unavailable(_))
        )
    }
}

/// A shared statement's failure, handed to each of the callers it held (the writes
/// of a group commit, the lookups of a coalesced read).
#[derive(Debug, Clone)]
pub enum SharedFailure {
    Unavailable(String),
    Failed(String),
}

impl From<&StoreError> for SharedFailure {
    fn from(err: &StoreError) -> Self {
        let text = match err {
            StoreError::Unavailable(cause) | StoreError::Database(cause) => cause.to_string(),
            other => other.to_string(),
        };
        if err.is_unavailable() {
            Self::Unavailable(text)
        } else {
            Self::Failed(text)
        }
    }
}

/// Errors that say "not now" rather than "never": lost or refused connections, an
/// exhausted pool, a server shutting down, a transaction rolled back for a conflict with
/// another (serialization failure, deadlock), SQLite's lock held past the busy timeout.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: 08xxx connection exceptions, 57P0x shutdown/cannot connect now,
            // 53xxx insufficient resources, 40xxx transaction rollback (serialization
            // failure, deadlock). SQLite reports extended codes, whose low
            // byte is the primary one: 5 BUSY, 6 LOCKED.
            let sqlite_primary = code.parse::<u32>().ok().map(|c| c & 0xff);
            code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
                || code.starts_with("40")
                || matches!(sqlite_primary, Some(5 | 6))
        }),
        _ => false,
    }
}
