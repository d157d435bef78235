//! The background thread: the event log's consumers (webhook deliveries, the NATS
//! relay) and its retention run on a runtime of their own, one thread at a lower CPU
//! priority than the API's. While the cores are saturated the API's requests and the
//! workers go first and deliveries trail (the log keeps what they owe); when there is
//! room they run at once. At the API's own priority they run on the API's runtime.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

/// How long the background runtime waits for its blocking reads once its work ended.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Where the background work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On a thread and runtime of its own, at a lower priority.
    OwnThread,
    /// On the API's runtime (at the API's priority).
    ApiRuntime,
}

/// The background work, running until it ends.
pub struct Background {
    done: oneshot::Receiver<()>,
}

impl Background {
    /// Starts `work` `nice` below the process's priority (0 to 19; the nice value
    /// reaches 19 at most; 0 is the API's priority): above 0 on a thread
    /// and runtime of its own, where `work` is called, so whatever it opens (sockets,
    /// timers, pools) is driven by the background runtime, never by the API's; at 0 as
    /// a task of the calling runtime. `work` is told which.
    pub fn start<F, Fut>(nice: u8, work: F) -> std::io::Result<Self>
    where
        F: FnOnce(Placement) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (finished, done) = oneshot::channel();
        if nice == 0 {
            tokio::spawn(async move {
                work(Placement::ApiRuntime).await;
                let _ = finished.send(());
            });
            return Ok(Self { done });
        }
        std::thread::Builder::new()
            .name("background".to_owned())
            .spawn(move || {
                // Before the runtime starts any thread: those it starts for blocking
                // reads inherit the priority.
                lower_priority(nice);
                // Built here, so that nothing drops a runtime on the API's.
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("background-blocking")
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot start the background runtime; \
                                        webhooks, the NATS relay and retention do NOT run");
                        return;
                    }
                };
                runtime.block_on(work(Placement::OwnThread));
                runtime.shutdown_timeout(SHUTDOWN_WAIT);
                let _ = finished.send(());
            })?;
        Ok(Self { done })
    }

    /// Waits until the work has ended; `false` if it ended by a panic, or never started.
    pub async fn finished(self) -> bool {
        self.done.await.is_ok()
    }
}

/// Lowers the calling thread's CPU priority by `by` (its nice value goes up by as much,
/// to 19 at most). On Linux the nice value belongs to each thread, and threads started
/// later by this one inherit it.
#[cfg(target_os = "linux")]
fn lower_priority(by: u8) {
    // SAFETY: on Linux `nice` changes the calling thread's nice value alone, and errno
    // is this thread's; `-1` is also a valid answer, so errno tells a failure apart.
    let failed = unsafe {
        *libc::__errno_location() = 0;
        libc::nice(i32::from(by)) == -1 && *libc::__errno_location() != 0
    };
    if failed {
        tracing::warn!(error = %std::io::Error::last_os_error(),
                       "could not lower the background thread's priority; it runs at the API's");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(by: u8) {
    if by != 0 {
        tracing::warn!(
            "BACKGROUND_NICE is applied on Linux only; the background thread runs at the API's priority"
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    fn own_nice() -> i32 {
        // SAFETY: as in `lower_priority`; `getpriority` only reads.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn the_work_and_its_blocking_threads_run_at_the_lower_priority_and_the_caller_does_not() {
        let before = own_nice();
        let (tx, rx) = std::sync::mpsc::channel();
        let background = Background::start(7, move |placement| async move {
            let blocking = tokio::task::spawn_blocking(own_nice).await.unwrap();
            tx.send((placement, own_nice(), blocking)).unwrap();
        })
        .unwrap();
        let (placement, work, blocking) = rx.recv().unwrap();
        assert_eq!(placement, Placement::OwnThread);
        let lowered = (before + 7).min(19);
        assert_eq!((work, blocking), (lowered, lowered));
        assert_eq!(own_nice(), before, "the caller's priority is unchanged");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(runtime.block_on(background.finished()));
    }

    #[test]
    fn at_the_apis_priority_the_work_is_a_task_of_the_calling_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let caller = std::thread::current().id();
        let (placement, thread) = runtime.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let background = Background::start(0, move |placement| async move {
                tx.send((placement, std::thread::current().id())).unwrap();
            })
            .unwrap();
            assert!(background.finished().await);
            rx.await.unwrap()
        });
        assert_eq!((placement, thread), (Placement::ApiRuntime, caller));
    }
}
