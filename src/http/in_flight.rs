//! Idempotency keys whose first request this instance is handling right now: a second
//! request with one of them is answered 409 rather than racing the first.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Keys whose first request is being handled by this instance right now.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<(String, String)>>>);

/// Holds a key as in flight until dropped, whatever way the request ends.
pub(super) struct InFlightGuard {
    keys: InFlight,
    entry: (String, String),
}

impl InFlight {
    /// Marks the key as in flight, or `None` if it already is.
    pub(super) fn enter(&self, scope: &str, key: &str) -> Option<InFlightGuard> {
        let entry = (scope.to_owned(), key.to_owned());
        let fresh = self.0.lock().expect("not poisoned").insert(entry.clone());
        fresh.then(|| InFlightGuard {
            keys: self.clone(),
            entry,
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.keys
            .0
            .lock()
            .expect("not poisoned")
            .remove(&self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_in_flight_until_its_guard_goes() {
        let keys = InFlight::default();
        let guard = keys.enter("u", "k").unwrap();
        assert!(keys.enter("u", "k").is_none());
        assert!(keys.enter("v", "k").is_some(), "scopes are separate");
        drop(guard);
        assert!(keys.enter("u", "k").is_some());
    }
}
