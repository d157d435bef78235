//! The SQLite backend's read-only connections.
//!
//! A point read (an order by id, its status, the running totals) runs in place on the
//! calling thread: it is a lookup in pages almost always in memory, a few
//! microseconds, and in WAL mode a reader never waits for the writer, so handing it
//! to another thread and back would cost more than the read. Reads that may walk many
//! rows (listings) go to tokio's blocking pool instead, so they never hold up the
//! runtime's threads.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::open;
use crate::store::StoreError;

/// How long a reader waits when SQLite says busy (only while a WAL is being
/// recovered or reset): short, because a point read holds a runtime thread meanwhile.
const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Connections opened at start, so the first requests find them ready.
const WARM: usize = 2;

/// A pool of idle read-only connections; one is opened when none is idle.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Most idle connections kept; more may be open at once under load.
    keep: usize,
}

impl Readers {
    pub fn open(path: PathBuf, keep: usize) -> Result<Arc<Self>, StoreError> {
        let keep = keep.max(1);
        let idle = (0..WARM.min(keep))
            .map(|_| open_reader(&path))
            .collect::<Result<_, _>>()?;
        Ok(Arc::new(Self {
            path,
            idle: Mutex::new(idle),
            keep,
        }))
    }

    /// Runs `read` in place on an idle connection (or a new one), then keeps it.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().expect("not poisoned").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = read(&conn);
        let mut idle = self.idle.lock().expect("not poisoned");
        if idle.len() < self.keep {
            idle.push(conn);
        }
        result
    }

    /// Like [`Readers::read`], on tokio's blocking pool: for reads of many rows.
    pub async fn read_blocking<T, F>(self: &Arc<Self>, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || readers.read(read))
            .await
            .map_err(|err| StoreError::ReadFailed(err.to_string()))?
    }
}

fn open_reader(path: &std::path::Path) -> Result<Connection, StoreError> {
    let conn = open(path)?;
    conn.busy_timeout(READ_BUSY_TIMEOUT)?;
    // Belt and braces: a reader can never write, whatever its SQL says.
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}
