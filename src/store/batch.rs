//! Group commit: concurrent writes of the same kind queue here and are written
//! together, in one statement and one transaction (one fsync), each caller answered
//! only after that commit. Under load a batch forms from whatever arrived while the
//! previous one was being written; alone, a write goes at once.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// How many items one batch may hold; bounds statement size and latency.
pub(super) const MAX_BATCH: usize = 256;

/// The outcome of a batch, to be handed to each of its callers.
#[derive(Debug, Clone)]
pub enum BatchError {
    Unavailable(String),
    Failed(String),
}

impl From<&StoreError> for BatchError {
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

type Reply<R> = oneshot::Sender<Result<R, BatchError>>;

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
                let mut items = vec![first];
                while items.len() < MAX_BATCH {
                    match incoming.try_recv() {
                        Ok(next) => items.push(next),
                        Err(_) => break,
                    }
                }
                let (batch, replies): (Vec<T>, Vec<Reply<R>>) = items.into_iter().unzip();
                match write(Arc::new(batch)).await {
                    Ok(results) => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Err(err) => {
                        let shared = BatchError::from(&err);
                        for reply in replies {
                            let _ = reply.send(Err(shared.clone()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Queues one item and waits until its batch is committed.
    pub async fn submit(&self, item: T) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((item, reply))
            .map_err(|_| StoreError::Batch(BatchError::Failed("the writer has stopped".into())))?;
        answer
            .await
            .map_err(|_| StoreError::Batch(BatchError::Failed("the writer has stopped".into())))?
            .map_err(StoreError::Batch)
    }
}
