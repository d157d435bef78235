//! The PostgreSQL backend's coalesced reads: concurrent lookups by id queue here and
//! go to the database together, one statement (`WHERE id = ANY($1)`) for all that
//! arrived while the statements before it ran, with a few statements in flight at once.
//! A statement starts after every lookup it holds was asked, so it sees every commit
//! acknowledged before the lookup: coalescing never answers from an older snapshot.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::store::group_commit::{Reply, answer, gather};
use crate::store::{SharedFailure, StoreError};

/// Most ids one statement looks up: enough that a statement under load holds every
/// lookup queued behind it, few enough that its answer is quick to send.
const MAX_LOOKUPS: usize = 256;

/// Sends lookups to the reading task and waits for their answers.
pub(super) struct Coalescer<K, V> {
    queue: mpsc::UnboundedSender<(K, Reply<Option<V>>)>,
}

impl<K, V> Coalescer<K, V>
where
    K: Copy + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    /// Starts the reading task, with at most `in_flight` statements at once, each on
    /// a pooled connection of its own. Alone, a lookup goes at once; under load, while
    /// those are busy, lookups queue and the next statement takes them all. `read` gets
    /// the ids of one statement and returns what it found, keyed by id (an id it did not
    /// find is absent).
    pub fn spawn<F, Fut>(in_flight: usize, read: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<(K, V)>, StoreError>> + Send + 'static,
    {
        let (queue, mut incoming) = mpsc::unbounded_channel::<(K, Reply<Option<V>>)>();
        let statements = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            // A statement's permit first, then its lookups: whatever queued while it
            // waited for the permit goes in it.
            while let Ok(permit) = statements.clone().acquire_owned().await {
                let Some(first) = incoming.recv().await else {
                    break;
                };
                let group = gather(first, MAX_LOOKUPS, || incoming.try_recv().ok());
                let (keys, replies): (Vec<K>, Vec<Reply<Option<V>>>) = group.into_iter().unzip();
                let found = read(keys.clone());
                tokio::spawn(async move {
                    let found = found.await;
                    drop(permit);
                    match found {
                        Ok(rows) => {
                            // By id, not by place: an id asked twice is answered twice.
                            let rows: HashMap<K, V> = rows.into_iter().collect();
                            let answers = keys.iter().map(|key| rows.get(key).cloned());
                            answer(replies, Ok(answers.collect()));
                        }
                        Err(err) => answer(replies, Err(&err)),
                    }
                });
            }
        });
        Self { queue }
    }

    /// Queues one lookup and waits for its statement's answer.
    pub async fn get(&self, key: K) -> Result<Option<V>, StoreError> {
        let (reply, answered) = oneshot::channel();
        self.queue.send((key, reply)).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Shared(SharedFailure::Failed(
        "the coalesced-read task has stopped".into(),
    ))
}
