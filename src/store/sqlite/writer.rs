//! The SQLite backend's one writing connection, on a thread of its own. Every write is
//! a message to that thread; new orders (keyed or not) and completions that arrive
//! together are committed together (group commit: one transaction, one fsync), and
//! each caller is answered only after its commit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::keys::store_keyed;
use super::sql::{CHANGED_COLUMNS, changed_from, insert_new_orders, millis, record_changes};
use crate::domain::{EventType, Order};
use crate::store::claims::{Completion, claim_outcome};
use crate::store::decode::id_taken;
use crate::store::group_commit::{KeyedOrder, KeyedOutcome, Reply, answer};
use crate::store::{ClaimOutcome, KeyedInsert, StoreError};

/// Most group-committed writes in one transaction: bounds how long a commit takes,
/// and so how long the requests behind it wait.
const MAX_GROUP: usize = 1024;

/// A write that runs alone, in its own transaction, on the writer's connection.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

enum Command {
    Insert(Order, Reply<()>),
    InsertKeyed(Box<KeyedOrder>, Reply<KeyedInsert>),
    Complete(Completion, Reply<ClaimOutcome>),
    Run(Job),
}

/// The handle through which everything is written. The thread ends when the last
/// handle is dropped.
pub(super) struct Writer {
    commands: mpsc::UnboundedSender<Command>,
}

/// Guarded: only a claim that is still current completes its order.
pub(super) const COMPLETE: &str = "UPDATE orders SET status = 'Completed', completed_at = ?3, \
     result = ?4, claim_token = NULL, lease_expires_at = NULL, last_seq = last_seq + 1 \
     WHERE id = ?1 AND claim_token = ?2 AND status = 'Processing'";

impl Writer {
    /// Starts the writer thread on `conn`; `new_work` is notified after every commit
    /// that added orders, `new_events` after every write (each may have logged events).
    pub fn start(
        conn: Connection,
        new_work: Arc<Notify>,
        new_events: Arc<watch::Sender<()>>,
    ) -> std::io::Result<Self> {
        let (commands, incoming) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_until_closed(conn, incoming, &new_work, &new_events))?;
        Ok(Self { commands })
    }

    /// Commits a new order (with whatever others are waiting) before returning.
    pub async fn insert(&self, order: Order) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Insert(order, reply))?;
        answer.await.map_err(|_| stopped())?
    }

    /// Commits a keyed order and its key (with whatever others are waiting), or
    /// nothing of it when a live key of that name exists, before returning.
    pub async fn insert_keyed(&self, keyed: KeyedOrder) -> Result<KeyedInsert, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::InsertKeyed(Box::new(keyed), reply))?;
        answer.await.map_err(|_| stopped())?
    }

    /// Completes a claimed order, group-committed like inserts.
    pub async fn complete(&self, completion: Completion) -> Result<ClaimOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Complete(completion, reply))?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `write` on the writer's connection, after the writes queued before it.
    pub async fn run<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Run(Box::new(move |conn| {
            let _ = reply.send(write(conn));
        })))?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `write` in one transaction on the writer's connection, after the writes
    /// queued before it; a change and its events commit together or not at all.
    pub async fn transaction<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = write(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    /// Whether the writer thread is still taking writes.
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        self.commands.send(command).map_err(|_| stopped())
    }
}

/// The writer dropped the answer: it panicked on this write, or it has stopped.
fn stopped() -> StoreError {
    StoreError::WriterStopped
}

fn write_until_closed(
    mut conn: Connection,
    mut incoming: mpsc::UnboundedReceiver<Command>,
    new_work: &Notify,
    new_events: &watch::Sender<()>,
) {
    while let Some(first) = incoming.blocking_recv() {
        // Whatever queued up while the last commit was being written goes in this one.
        let mut inserts = Vec::new();
        let mut keyed = Vec::new();
        let mut completions = Vec::new();
        let mut jobs = Vec::new();
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Insert(order, reply) => inserts.push((order, reply)),
                Command::InsertKeyed(order, reply) => keyed.push((*order, reply)),
                Command::Complete(completion, reply) => completions.push((completion, reply)),
                Command::Run(job) => jobs.push(job),
            }
            if inserts.len() + keyed.len() + completions.len() < MAX_GROUP {
                next = incoming.try_recv().ok();
            }
        }
        // A panic loses only the answers of the writes it was making (their callers
        // are told the write failed), never the writer: every later write still works.
        if !inserts.is_empty() || !keyed.is_empty() || !completions.is_empty() {
            let group = Group {
                inserts,
                keyed,
                completions,
            };
            match catch_unwind(AssertUnwindSafe(|| commit_group(&mut conn, group))) {
                Ok(true) => new_work.notify_one(),
                Ok(false) => {}
                Err(_) => tracing::error!("a group commit panicked; its writes were refused"),
            }
        }
        for job in jobs {
            if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() {
                tracing::error!("a write panicked; it was refused");
            }
        }
        new_events.send_replace(());
    }
}

type Replies<T, R> = Vec<(T, Reply<R>)>;

/// The writes of one group commit, each with where its caller waits.
struct Group {
    inserts: Replies<Order, ()>,
    keyed: Replies<KeyedOrder, KeyedInsert>,
    completions: Replies<Completion, ClaimOutcome>,
}

/// One transaction for the whole group; returns whether any order was added.
fn commit_group(conn: &mut Connection, group: Group) -> bool {
    let Group {
        inserts,
        keyed,
        completions,
    } = group;
    let written = (|| -> Result<_, StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = insert_new_orders(&tx, inserts.iter().map(|(order, _)| order))?;
        // A live key or a taken id refuses that keyed order alone; a database error
        // fails the group.
        let keyed_outcomes = keyed
            .iter()
            .map(|(order, _)| store_keyed(&tx, order))
            .collect::<Result<Vec<_>, _>>()?;
        let mut complete = tx.prepare_cached(&format!("{COMPLETE} RETURNING {CHANGED_COLUMNS}"))?;
        let mut completed = Vec::with_capacity(completions.len());
        for (completion, _) in &completions {
            let changed = changed_from(
                &mut complete,
                params![
                    completion.id.to_string(),
                    completion.token.to_string(),
                    millis(completion.at),
                    completion.result,
                ],
            )?;
            record_changes(&tx, &changed, |_| EventType::Completed, completion.at)?;
            completed.push(claim_outcome(changed.len() as u64));
        }
        drop(complete);
        tx.commit()?;
        Ok((inserted, keyed_outcomes, completed))
    })();
    let insert_replies = inserts.into_iter().map(|(_, reply)| reply);
    let keyed_replies = keyed.into_iter().map(|(_, reply)| reply);
    let completion_replies = completions.into_iter().map(|(_, reply)| reply);
    match written {
        Ok((inserted, keyed_outcomes, completed)) => {
            let added = inserted.iter().any(|new| *new)
                || keyed_outcomes.contains(&KeyedOutcome::Stored(KeyedInsert::Inserted));
            for (reply, outcome) in keyed_replies.zip(keyed_outcomes) {
                let _ = reply.send(outcome.into_result());
            }
            // A taken id fails that order alone, not the others committed with it.
            for (reply, new) in insert_replies.zip(inserted) {
                let _ = reply.send(if new { Ok(()) } else { Err(id_taken()) });
            }
            answer(completion_replies, Ok(completed));
            added
        }
        Err(err) => {
            answer(insert_replies, Err(&err));
            answer(keyed_replies, Err(&err));
            answer(completion_replies, Err(&err));
            false
        }
    }
}
