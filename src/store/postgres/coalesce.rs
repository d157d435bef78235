//! The PostgreSQL backend's coalesced reads: concurrent lookups by id queue here and
//! go to the database together, one statement (`WHERE id = ANY($1)`) for all that
//! arrived while the statements before it ran, with a few statements in flight at once.
//! A statement starts after every lookup it holds was asked, so it sees every commit
//! acknowledged before the lookup: coalescing never answers from an older snapshot.
//! A lookup that waits longer than a pooled connection may (the database slow or
//! down) is answered "unavailable" rather than queued without end, and one whose
//! caller has gone is dropped unread.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::store::group_commit::{Reply, answer, gather};
use crate::store::{SharedFailure, StoreError};

/// Most ids one statement looks up: enough that a statement under load holds every
/// lookup queued behind it, few enough that its answer is quick to send.
const MAX_LOOKUPS: usize = 256;

/// One lookup: the id, when it was asked, and where its caller waits.
type Lookup<K, V> = (K, Instant, Reply<Option<V>>);

/// Sends lookups to the reading task and waits for their answers.
pub(super) struct Coalescer<K, V> {
    queue: mpsc::UnboundedSender<Lookup<K, V>>,
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
    /// find is absent). A lookup still queued `max_wait` after it was asked is answered
    /// "unavailable".
    pub fn spawn<F, Fut>(in_flight: usize, max_wait: Duration, read: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<(K, V)>, StoreError>> + Send + 'static,
    {
        let (queue, mut incoming) = mpsc::unbounded_channel::<Lookup<K, V>>();
        let statements = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            // A statement's permit first, then its lookups: whatever queued while it
            // waited for the permit goes in it.
            while let Ok(permit) = statements.clone().acquire_owned().await {
                let Some(first) = next_live(&mut incoming, max_wait).await else {
                    break;
                };
                let group = gather(first, MAX_LOOKUPS, || {
                    std::iter::from_fn(|| incoming.try_recv().ok())
                        .find_map(|lookup| live(lookup, max_wait))
                });
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
        let asked = Instant::now();
        self.queue
            .send((key, asked, reply))
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// The next lookup worth reading, waiting for one if none is queued.
async fn next_live<K, V>(
    incoming: &mut mpsc::UnboundedReceiver<Lookup<K, V>>,
    max_wait: Duration,
) -> Option<(K, Reply<Option<V>>)> {
    loop {
        if let Some(lookup) = live(incoming.recv().await?, max_wait) {
            return Some(lookup);
        }
    }
}

/// The lookup if it is still worth reading: its caller still waits, and has not waited
/// longer than `max_wait` (that caller is answered "unavailable" here).
fn live<K, V>(
    (key, asked, reply): Lookup<K, V>,
    max_wait: Duration,
) -> Option<(K, Reply<Option<V>>)> {
    if reply.is_closed() {
        return None;
    }
    if asked.elapsed() > max_wait {
        let waited = format!("a read waited over {max_wait:?} for a connection");
        let _ = reply.send(Err(StoreError::Shared(SharedFailure::Unavailable(waited))));
        return None;
    }
    Some((key, reply))
}

fn stopped() -> StoreError {
    StoreError::Shared(SharedFailure::Failed(
        "the coalesced-read task has stopped".into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    type Statements = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A coalescer of one statement at a time whose statements take `delay`, noting
    /// the ids of each.
    fn slow_reads(delay: Duration, max_wait: Duration) -> (Arc<Coalescer<u32, u32>>, Statements) {
        let statements = Arc::new(Mutex::new(Vec::new()));
        let noted = statements.clone();
        let reads = Coalescer::spawn(1, max_wait, move |ids: Vec<u32>| {
            noted.lock().unwrap().push(ids.clone());
            async move {
                tokio::time::sleep(delay).await;
                Ok(ids.into_iter().map(|id| (id, id * 10)).collect())
            }
        });
        (Arc::new(reads), statements)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_queued_past_its_wait_is_answered_unavailable() {
        let (reads, statements) = slow_reads(Duration::from_millis(200), Duration::from_millis(50));
        let first = tokio::spawn({
            let reads = reads.clone();
            async move { reads.get(1).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Queued behind a statement that holds the only permit for 200 ms.
        let late = reads.get(2).await.unwrap_err();
        assert!(late.is_unavailable(), "{late}");
        assert_eq!(first.await.unwrap().unwrap(), Some(10));
        // Once the queue is short again, lookups are read as before.
        assert_eq!(reads.get(3).await.unwrap(), Some(30));
        assert_eq!(*statements.lock().unwrap(), [vec![1], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_whose_caller_has_gone_is_not_read() {
        let (reads, statements) = slow_reads(Duration::from_millis(200), Duration::from_secs(10));
        let first = tokio::spawn({
            let reads = reads.clone();
            async move { reads.get(1).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let gone = tokio::spawn({
            let reads = reads.clone();
            async move { reads.get(2).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        gone.abort();
        let waiting = reads.get(3);
        assert_eq!(waiting.await.unwrap(), Some(30));
        assert_eq!(first.await.unwrap().unwrap(), Some(10));
        assert_eq!(*statements.lock().unwrap(), [vec![1], vec![3]]);
    }
}
