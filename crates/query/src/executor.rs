//! `QueryExecutor`: where queries run — a tokio runtime of their own, so no
//! query can occupy the workers that accept OTLP.
//!
//! - **Isolation.** Planning is synchronous and can take seconds; on the
//!   ingest runtime it would stall every request. Here it runs on the query
//!   runtime's threads, which also run at a lower scheduling priority than
//!   ingest (Linux: nice +10), so on a busy machine ingest is served first.
//! - **Stack.** The threads have large stacks: planning and dropping
//!   expression trees recurse once per level (see `guard`).
//! - **Bounded concurrency.** At most `max_concurrent` queries run at once;
//!   the others wait for a slot, within their timeout.
//! - **Timeout.** It covers the wait for a slot, planning and execution.
//!   When it expires — or the caller goes away — the caller gets `Timeout`
//!   at once and the query task is aborted; a task stuck in synchronous
//!   planning stops at its next await and keeps its slot until then, so
//!   runaway planning cannot multiply.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use tf_application::ports::QueryError;

/// Threads, slots and stack of the query runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// Worker threads; 0 = one per CPU.
    pub threads: usize,
    pub max_concurrent: usize,
    pub stack_bytes: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            max_concurrent: 4,
            stack_bytes: 64 << 20,
        }
    }
}

pub struct QueryExecutor {
    /// `None` only while dropping (the runtime is shut down in the background:
    /// dropping a runtime inside another runtime's task would panic).
    runtime: Option<tokio::runtime::Runtime>,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for QueryExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryExecutor")
            .field("free_slots", &self.slots.available_permits())
            .finish()
    }
}

/// Lowers the calling thread's scheduling priority (Linux threads have
/// their own nice value); elsewhere a no-op.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `gettid` names
    // the calling thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

impl QueryExecutor {
    pub fn new(config: ExecutorConfig) -> std::io::Result<Self> {
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("tf-query")
            .thread_stack_size(config.stack_bytes)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
            slots: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
        })
    }

    /// The query runtime, for background work at the read side's lower
    /// priority (compaction); `None` once shut down.
    pub fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }

    /// Runs `query` on the query runtime within `timeout`, in one of the
    /// `max_concurrent` slots.
    pub async fn run<T, F>(&self, timeout: Duration, query: F) -> Result<T, QueryError>
    where
        F: Future<Output = Result<T, QueryError>> + Send + 'static,
        T: Send + 'static,
    {
        let deadline = Instant::now() + timeout;
        let slot = match tokio::time::timeout_at(deadline, Arc::clone(&self.slots).acquire_owned())
            .await
        {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => {
                return Err(QueryError::internal("the query runtime is shut down"));
            }
            Err(_) => return Err(QueryError::Timeout(timeout)),
        };
        self.spawn(deadline, timeout, Some(slot), query).await
    }

    /// Runs `work` on the query runtime within `timeout`, without taking a
    /// slot: for the read side's own work around queries (grouping and
    /// rendering results), which itself runs queries through [`Self::run`].
    pub async fn offload<T, F>(&self, timeout: Duration, work: F) -> Result<T, QueryError>
    where
        F: Future<Output = Result<T, QueryError>> + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(Instant::now() + timeout, timeout, None, work)
            .await
    }

    async fn spawn<T, F>(
        &self,
        deadline: Instant,
        timeout: Duration,
        slot: Option<OwnedSemaphorePermit>,
        query: F,
    ) -> Result<T, QueryError>
    where
        F: Future<Output = Result<T, QueryError>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Err(QueryError::internal("the query runtime is shut down"));
        };
        // The deadline is enforced inside the task too: if the caller goes
        // away (a client disconnects), the query still ends at its deadline
        // and gives its slot back.
        let task = runtime.spawn(async move {
            let result = match tokio::time::timeout_at(deadline, query).await {
                Ok(result) => result,
                Err(_) => Err(QueryError::Timeout(timeout)),
            };
            drop(slot);
            result
        });
        // Dropping the guard (the caller went away) aborts the task.
        let mut task = AbortOnDrop(task);
        match tokio::time::timeout_at(deadline, &mut task.0).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) if e.is_panic() => Err(QueryError::internal(format!("query panicked: {e}"))),
            Ok(Err(e)) => Err(QueryError::internal(format!("query task failed: {e}"))),
            Err(_) => Err(QueryError::Timeout(timeout)),
        }
    }
}

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for QueryExecutor {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executor(max_concurrent: usize) -> QueryExecutor {
        QueryExecutor::new(ExecutorConfig {
            threads: 1,
            max_concurrent,
            stack_bytes: 16 << 20,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn blocking_work_times_out_without_blocking_the_caller() {
        let ex = executor(1);
        let started = std::time::Instant::now();
        let r: Result<(), _> = ex
            .run(Duration::from_millis(100), async {
                // Synchronous work, like planning: no await point to cancel at.
                std::thread::sleep(Duration::from_millis(800));
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(QueryError::Timeout(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_millis(600));
        // Its slot is held until the stuck task ends: the next query waits
        // for it (and gets it, within a longer timeout).
        let r = ex.run(Duration::from_millis(50), async { Ok(1) }).await;
        assert!(matches!(r, Err(QueryError::Timeout(_))), "{r:?}");
        let r = ex.run(Duration::from_secs(5), async { Ok(2) }).await;
        assert_eq!(r.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_query_whose_caller_goes_away_gives_its_slot_back() {
        let ex = executor(1);
        let endless = ex.run(Duration::from_secs(600), async {
            std::future::pending::<()>().await;
            Ok(())
        });
        // The caller gives up (a client disconnect drops the future).
        assert!(
            tokio::time::timeout(Duration::from_millis(100), endless)
                .await
                .is_err()
        );
        let r = ex.run(Duration::from_secs(5), async { Ok(3) }).await;
        assert_eq!(r.unwrap(), 3, "the abandoned query released its slot");
    }

    #[tokio::test]
    async fn runs_on_threads_with_the_configured_stack() {
        let ex = executor(2);
        let name = ex
            .run(Duration::from_secs(5), async {
                Ok(std::thread::current().name().map(str::to_owned))
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("tf-query"));
        // A 3 MiB frame overflows a default 2 MiB thread but fits in 16 MiB
        // (a debug build may hold it twice).
        #[inline(never)]
        fn stack_hungry() -> usize {
            let big = std::hint::black_box([1u8; 3 << 20]);
            big.iter().map(|&b| b as usize).sum()
        }
        let r = ex
            .run(Duration::from_secs(5), async { Ok(stack_hungry()) })
            .await
            .unwrap();
        assert_eq!(r, 3 << 20);
    }
}
