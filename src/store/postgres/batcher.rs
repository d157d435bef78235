//! The PostgreSQL backend's group commit: concurrent writes of one kind queue here and
//! are written together, in one statement and one transaction (one fsync), on a task
//! of their own; `group_commit` forms the groups and answers the callers.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::group_commit::{Reply, answer, gather};
use crate::store::{SharedFailure, StoreError};

/// How many items one batch may hold; bounds statement size and latency.
pub(super) const MAX_BATCH: usize = 256;

/// Sends items to the writer task and waits for their results.
pub(super) struct Batcher<T, R> {
    queue: mpsc::UnboundedSender<(T, Reply<R>)>,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the writer task. `write` gets a batch and returns one result per item,
    /// in order, or an error for the whole batch.
    pub fn spawn<F, Fut>(write: F) -> Self
    where
        F: Fn(Arc<Vec<T>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>, StoreError>> + Send,
    {
        let (queue, mut incoming) = mpsc::unbounded_channel::<(T, Reply<R>)>();
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let group = gather(first, MAX_BATCH, || incoming.try_recv().ok());
                let (batch, replies): (Vec<T>, Vec<Reply<R>>) = group.into_iter().unzip();
                match write(Arc::new(batch)).await {
                    Ok(results) => answer(replies, Ok(results)),
                    Err(err) => answer(replies, Err(&err)),
                }
            }
        });
        Self { queue }
    }

    /// Queues one item and waits until its batch is committed.
    pub async fn submit(&self, item: T) -> Result<R, StoreError> {
        let (reply, answered) = oneshot::channel();
        self.queue.send((item, reply)).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Shared(SharedFailure::Failed(
        "the group-commit task has stopped".into(),
    ))
}
