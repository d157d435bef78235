//! The PostgreSQL backend's coalesced reads: concurrent lookups by key (an order's id,
//! or the time a `/metrics` read asks about) queue here and go to the database
//! together, one statement (a lookup per id, or one read for every time) for all that
//! arrived while the statements before it ran, with a few statements in flight at once
//! (as many as each kind is given).
//! A statement starts after every lookup it holds was asked, so it sees every commit
//! acknowledged before the lookup: coalescing never answers from an older snapshot.
//! A lookup whose answer takes longer than a pooled connection may (the database slow,
//! down, or a statement stuck) is answered "unavailable" rather than waiting without
//! end, and a lookup whose caller has gone (timed out, or hung up) is dropped unread.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::store::group_commit::{Reply, answer, gather};
use crate::store::{SharedFailure, StoreError};

/// Most lookups one statement holds (ids, or the times of overviews): enough that a
/// statement under load holds every lookup queued behind it, few enough that its
/// answer is quick to send.
const MAX_LOOKUPS: usize = 256;

/// One lookup: the id, and where its caller waits.
type Lookup<K, V> = (K, Reply<Option<V>>);

/// Sends lookups to the reading task and waits for their answers.
pub(super) struct Coalescer<K, V> {
    queue: mpsc::UnboundedSender<Lookup<K, V>>,
    max_wait: Duration,
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
    /// find is absent). A lookup not answered `max_wait` after it was asked is answered
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
                let Some(first) = next_live(&mut incoming).await else {
                    break;
                };
                let group = gather(first, MAX_LOOKUPS, || {
                    std::iter::from_fn(|| incoming.try_recv().ok())
                        .find(|(_, reply)| !reply.is_closed())
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
        Self { queue, max_wait }
    }

    /// Queues one lookup and waits for its statement's answer, at most `max_wait`.
    pub async fn get(&self, key: K) -> Result<Option<V>, StoreError> {
        let (reply, answered) = oneshot::channel();
        self.queue.send((key, reply)).map_err(|_| stopped())?;
        match tokio::time::timeout(self.max_wait, answered).await {
            Ok(answer) => answer.map_err(|_| stopped())?,
            // Dropping `answered` closes the reply: a lookup still queued is not read.
            Err(_) => Err(StoreError::Shared(SharedFailure::Unavailable(format!(
                "a read was not answered within {:?}",
                self.max_wait
            )))),
        }
    }
}

/// The next lookup whose caller still waits, waiting for one if none is queued.
async fn next_live<K, V>(
    incoming: &mut mpsc::UnboundedReceiver<Lookup<K, V>>,
) -> Option<Lookup<K, V>> {
    loop {
        let lookup = incoming.recv().await?;
        if !lookup.1.is_closed() {
            return Some(lookup);
        }
    }
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

    /// A coalescer of one statement at a time, noting the ids of each; a statement that
    /// holds id 1 takes 200 ms, any other answers at once.
    fn reads_slow_for_1(max_wait: Duration) -> (Arc<Coalescer<u32, u32>>, Statements) {
        let statements = Arc::new(Mutex::new(Vec::new()));
        let noted = statements.clone();
        let reads = Coalescer::spawn(1, max_wait, move |ids: Vec<u32>| {
            noted.lock().unwrap().push(ids.clone());
            async move {
                if ids.contains(&1) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(ids.into_iter().map(|id| (id, id * 10)).collect())
            }
        });
        (Arc::new(reads), statements)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_not_answered_within_its_wait_is_answered_unavailable() {
        let (reads, statements) = reads_slow_for_1(Duration::from_millis(50));
        let first = tokio::spawn({
            let reads = reads.clone();
            async move { reads.get(1).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Queued behind the slow statement, which holds the only permit for 200 ms.
        let asked = tokio::time::Instant::now();
        let queued = reads.get(2).await.unwrap_err();
        assert!(queued.is_unavailable(), "{queued}");
        assert!(asked.elapsed() <= Duration::from_millis(50));
        // The slow statement's own lookup is not waited for past its limit either.
        let slow = first.await.unwrap().unwrap_err();
        assert!(slow.is_unavailable(), "{slow}");
        // Once the statement ends, the lookup whose caller gave up is not read; the
        // next is read as before.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(reads.get(3).await.unwrap(), Some(30));
        assert_eq!(*statements.lock().unwrap(), [vec![1], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_whose_caller_has_gone_is_not_read() {
        let (reads, statements) = reads_slow_for_1(Duration::from_secs(10));
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
        assert_eq!(reads.get(3).await.unwrap(), Some(30));
        assert_eq!(first.await.unwrap().unwrap(), Some(10));
        assert_eq!(*statements.lock().unwrap(), [vec![1], vec![3]]);
    }
}
