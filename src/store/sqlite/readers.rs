//! The SQLite backend's read-only connections, used in place on the calling thread.
//!
//! A read here is a lookup in pages that are almost always in memory, taking a few
//! microseconds, and in WAL mode readers never wait for the writer: handing it to
//! another thread and back would cost more than the read itself.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use super::open;
use crate::store::StoreError;

/// A pool of idle read-only connections; one is opened when none is idle.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Most idle connections kept; more may be open at once under load.
    keep: usize,
}

impl Readers {
    pub fn new(path: PathBuf, keep: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1),
        }
    }

    /// Runs `read` on an idle connection (or a new one), then keeps it for the next.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().expect("not poisoned").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = open(&self.path)?;
                // Belt and braces: a reader can never write, whatever its SQL says.
                conn.pragma_update(None, "query_only", true)?;
                conn
            }
        };
        let result = read(&conn);
        let mut idle = self.idle.lock().expect("not poisoned");
        if idle.len() < self.keep {
            idle.push(conn);
        }
        result
    }
}
