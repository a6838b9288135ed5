//! [`CountQueue`]: the handle an app records requests with, and the flusher task
//! behind it that aggregates them and writes batches to a [`Counter`](crate::Counter).

mod builder;
mod clock;
mod flusher;
mod lanes;
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
/// `record` stamps the request with the current second and pushes a 16-byte event
/// onto the calling thread's own bounded ring (its *lane*; the shared ring when the
/// lane is full): no lock, no atomic read-modify-write, no allocation, no clock call.
/// A flusher task (one per queue, on the tokio runtime it was built on) drains the
/// rings every few milliseconds, sums the events per endpoint and time bucket, and
/// writes one [`Batch`](crate::Batch) per flush interval, exactly once, retrying with
/// backoff on failure. When both rings are full the request is dropped and counted in
/// [`Stats`].
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

/// One request on a ring: the interned path, and the Unix second and the method packed
/// into one word (`second << 8 | method`), so four events share a cache line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) path: Path,
    stamp: i64,
}

impl Event {
    #[inline]
    pub(crate) fn new(method: Method, path: Path, second: i64) -> Event {
        // Seconds of years 1 to 9999 need 39 bits: the shift cannot overflow.
        Event {
            path,
            stamp: (second << 8) | method as i64,
        }
    }

    pub(crate) fn second(self) -> i64 {
        self.stamp >> 8
    }

    pub(crate) fn method(self) -> Method {
        Method::from_repr(self.stamp as u8).expect("packed from a Method")
    }
}

/// What the handles and the flusher share.
#[derive(Debug)]
pub(crate) struct Shared {
    lanes: lanes::Lanes,
    /// Where a request goes when its thread's lane is full.
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
        self.push(Event::new(method, path, clock::now_second()))
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
        self.push_wait(Event::new(method, path, clock::now_second()))
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
    ///
    /// Requests still in a thread's lane are not seen until the flusher drains it
    /// (every drain interval, and on `flush`): after `flush` returns the snapshot is
    /// exact.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot(self.shared.events.len() as u64)
    }

    #[inline]
    fn push(&self, event: Event) -> Recorded {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Relaxed) {
            shared.stats.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return Recorded::DroppedClosed;
        }
        let Err(event) = shared.lanes.push(event) else {
            return Recorded::Queued;
        };
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
            if let Err(back) = shared.lanes.push(event) {
                event = back;
            } else {
                return Ok(());
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
    Ok(Event::new(method, path, floor_second(at)))
}
