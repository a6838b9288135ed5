//! [`CountQueue`]: the handle an app records requests with, and the flusher task
//! behind it that aggregates them and writes batches to a [`Counter`](crate::Counter).

mod builder;
mod clock;
mod flusher;
mod pending;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_queue::ArrayQueue;
use jiff::Timestamp;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::calendar::{check_timestamp, floor_second};
use crate::{Error, Method, Path, Result};

pub use builder::CountQueueBuilder;
pub use pending::OVERFLOW_PATH;
pub use stats::Stats;

use stats::StatsCells;

/// Records requests without ever blocking the caller, and writes them, aggregated,
/// to a [`Counter`](crate::Counter) in the background.
///
/// `record` stamps the request with the current second and pushes a 24-byte event
/// onto a bounded lock-free queue: no lock, no allocation, no clock call. A flusher
/// task (one per queue, on the tokio runtime it was built on) drains the queue every
/// few milliseconds, sums the events per endpoint and time bucket, and writes one
/// [`Batch`](crate::Batch) per flush interval, exactly once, retrying with backoff on
/// failure. A full queue drops the request and counts it in [`Stats`].
///
/// Cloning is cheap; all clones share the queue. When the last clone is dropped the
/// flusher writes what it holds and stops; [`shutdown`](CountQueue::shutdown) does the
/// same and says how it went.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> count_core::Result<()> {
/// use std::sync::Arc;
/// use count_core::{CountQueue, Method, Path};
/// # let counter = Arc::new(count_memory::MemoryCounter::new());
///
/// let queue = CountQueue::builder(counter).build()?;
/// let users = Path::new("/users/{id}")?;
/// queue.record(Method::Get, users);
/// queue.flush().await?; // written now
/// assert_eq!(queue.stats().written, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CountQueue {
    shared: Arc<Shared>,
    /// The flusher stops when the last sender is gone.
    commands: mpsc::UnboundedSender<Command>,
}

/// What [`CountQueue::record`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// On the queue: it will be written.
    Queued,
    /// Dropped because the queue was full; counted in [`Stats::dropped_full`].
    DroppedFull,
    /// Dropped because the queue was shut down; counted in [`Stats::dropped_closed`].
    DroppedClosed,
}

/// One request on the queue. `Copy` and 24 bytes: pushing it touches nothing shared
/// but the queue slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) path: Path,
    /// Unix second.
    pub(crate) second: i64,
    pub(crate) method: Method,
}

/// What the handles and the flusher share.
#[derive(Debug)]
pub(crate) struct Shared {
    events: ArrayQueue<Event>,
    closed: AtomicBool,
    stats: StatsCells,
    /// The flusher made room: wakes `record_wait`.
    room: Notify,
    /// A `record_wait` found the queue full: wakes the flusher to drain now.
    full: Notify,
}

#[derive(Debug)]
pub(crate) enum Command {
    Flush(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<Result<()>>),
}

impl CountQueue {
    /// A builder that writes to `counter`; see [`CountQueueBuilder`] for the settings.
    pub fn builder(counter: Arc<dyn crate::Counter>) -> CountQueueBuilder {
        CountQueueBuilder::new(counter)
    }

    /// Counts one request to `path` with `method`, now.
    ///
    /// Never blocks, takes no lock, does not allocate. If the queue is full the request
    /// is dropped and counted in [`Stats::dropped_full`].
    #[inline]
    pub fn record(&self, method: Method, path: Path) -> Recorded {
        self.push(Event {
            path,
            second: clock::now_second(),
            method,
        })
    }

    /// Counts one request made at `at` (the caller's clock, as the gRPC `Add` stream
    /// carries it). Like [`record`](CountQueue::record), but a timestamp outside years
    /// 1 to 9999 is refused.
    #[inline]
    pub fn record_at(&self, method: Method, path: Path, at: Timestamp) -> Result<Recorded> {
        Ok(self.push(event_at(method, path, at)?))
    }

    /// Counts one request now, waiting for room if the queue is full instead of
    /// dropping it: backpressure for a server that can slow its clients down.
    ///
    /// Cancel-safe: dropping the future before it completes records nothing.
    /// Fails with [`Error::Closed`] once the queue is shut down.
    pub async fn record_wait(&self, method: Method, path: Path) -> Result<()> {
        self.push_wait(Event {
            path,
            second: clock::now_second(),
            method,
        })
        .await
    }

    /// [`record_wait`](CountQueue::record_wait) with the caller's timestamp.
    pub async fn record_at_wait(&self, method: Method, path: Path, at: Timestamp) -> Result<()> {
        self.push_wait(event_at(method, path, at)?).await
    }

    /// Writes everything recorded before this call, and returns once it is written,
    /// or with the error of the failed write (the counts stay pending and are retried).
    pub async fn flush(&self) -> Result<()> {
        self.command(Command::Flush).await
    }

    /// Stops recording, writes what is pending (retrying for up to the shutdown
    /// timeout), and stops the flusher. Requests recorded afterwards are dropped and
    /// counted in [`Stats::dropped_closed`]. A second call returns `Ok` at once.
    pub async fn shutdown(&self) -> Result<()> {
        if self.commands.is_closed() {
            return Ok(());
        }
        match self.command(Command::Shutdown).await {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }

    /// Whether [`shutdown`](CountQueue::shutdown) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// A snapshot of what the queue has done.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot(self.shared.events.len() as u64)
    }

    /// How many events the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.shared.events.capacity()
    }

    #[inline]
    fn push(&self, event: Event) -> Recorded {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Relaxed) {
            shared.stats.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return Recorded::DroppedClosed;
        }
        match shared.events.push(event) {
            Ok(()) => Recorded::Queued,
            Err(_) => {
                shared.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
                Recorded::DroppedFull
            }
        }
    }

    async fn push_wait(&self, mut event: Event) -> Result<()> {
        let shared = &*self.shared;
        loop {
            // Register for the wake-up before trying, so a drain between the failed
            // push and the wait cannot be missed.
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if shared.closed.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            match shared.events.push(event) {
                Ok(()) => return Ok(()),
                Err(back) => event = back,
            }
            shared.full.notify_one();
            room.await;
        }
    }

    async fn command(&self, make: fn(oneshot::Sender<Result<()>>) -> Command) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

fn event_at(method: Method, path: Path, at: Timestamp) -> Result<Event> {
    let at = check_timestamp(at)?;
    Ok(Event {
        path,
        second: floor_second(at),
        method,
    })
}
