//! Group commit above the SQL: writes that queue while one group is being committed
//! form the next group (up to a limit), and each caller is answered only after the
//! commit, with its own result or with the group's failure. The PostgreSQL batcher
//! uses both halves; the SQLite writer forms its own groups (its limit counts only
//! inserts and completions, not the other writes queued beside them) and answers
//! through `answer`.

use tokio::sync::oneshot;

use super::decode::id_taken;
use super::{IdempotentResponse, KeyedInsert, SharedFailure, StoreError};
use crate::domain::{Order, Timestamp};

/// Where one caller waits for its write's result.
pub(super) type Reply<R> = oneshot::Sender<Result<R, StoreError>>;

/// A keyed order waiting for its group: the order, the answer kept under its key, and
/// the time before which a key of the same name has expired.
pub(super) struct KeyedOrder {
    pub order: Order,
    pub response: IdempotentResponse,
    pub live_since: Timestamp,
}

/// What a group commit did with one keyed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyedOutcome {
    Stored(KeyedInsert),
    /// Its key was free but its order's id was not: nothing of it was written.
    IdTaken,
}

impl KeyedOutcome {
    /// The caller's answer: a taken id is that order's failure alone.
    pub fn into_result(self) -> Result<KeyedInsert, StoreError> {
        match self {
            Self::Stored(stored) => Ok(stored),
            Self::IdTaken => Err(id_taken()),
        }
    }
}

/// `first` and whatever else is queued right now (`next` answers `None` when nothing
/// is), up to `max` items: under load a group is what arrived during the last commit,
/// and alone a write goes at once.
pub(super) fn gather<T>(first: T, max: usize, mut next: impl FnMut() -> Option<T>) -> Vec<T> {
    let mut group = vec![first];
    while group.len() < max {
        match next() {
            Some(item) => group.push(item),
            None => break,
        }
    }
    group
}

/// Answers each caller with its own result, in order, or every caller with the
/// group's failure.
pub(super) fn answer<R>(
    replies: impl IntoIterator<Item = Reply<R>>,
    results: Result<Vec<R>, &StoreError>,
) {
    match results {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(err) => {
            let shared = SharedFailure::from(err);
            for reply in replies {
                let _ = reply.send(Err(StoreError::Shared(shared.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_what_is_queued_up_to_the_limit() {
        let mut queued = vec![4, 3, 2];
        assert_eq!(gather(1, 3, || queued.pop()), [1, 2, 3]);
        assert_eq!(gather(9, 3, || None::<i32>), [9]);
    }

    #[test]
    fn every_caller_learns_the_groups_failure() {
        let (replies, answers): (Vec<_>, Vec<_>) =
            (0..3).map(|_| oneshot::channel::<Result<u8, _>>()).unzip();
        answer(replies, Err(&StoreError::WriterStopped));
        for mut answer in answers {
            let err = answer.try_recv().unwrap().unwrap_err();
            assert!(
                matches!(err, StoreError::Shared(SharedFailure::Failed(_))),
                "{err}"
            );
        }
    }
}
