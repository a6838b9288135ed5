//! [`CountQueue`]: the handle an app records requests with, and the flusher task
//! behind it that aggregates them and writes batches to a [`Counter`](crate::Counter).

mod builder;
pub(crate) mod clock;
mod fence;
mod flusher;
mod lanes;
mod pending;
mod ring;
mod stats;
mod threads;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use jiff::Timestamp;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::model::calendar::{check_timestamp, floor_second};
use crate::{CountKey, Error, Method, Path, Result, Status, Subject};

pub use builder::CountQueueBuilder;
pub use pending::{OVERFLOW_PATH, OVERFLOW_SUBJECT};
pub use stats::Stats;

use lanes::{Lanes, Pushed};
use stats::StatsCells;

/// Records requests without ever blocking the caller, and writes them, aggregated,
/// to a [`Counter`](crate::Counter) in the background.
///
/// `record` stamps the request with the current second and pushes a 24-byte event
/// onto the calling thread's own bounded ring (its *lane*; the shared ring when the
/// lane is full): no lock, no atomic read-modify-write, no allocation, no clock call.
/// A flusher task (one per queue, on the tokio runtime it was built on) drains the
/// rings every few milliseconds, sums the events per [`CountKey`] and time bucket, and
/// writes one [`Batch`](crate::Batch) per flush interval, exactly once, retrying with
/// backoff on failure. When both rings are full the request is dropped and counted in
/// [`Stats`].
///
/// Cloning is cheap; all clones share the queue. When the last clone is dropped the
/// flusher writes what it holds and stops; [`shutdown`](CountQueue::shutdown) does the
/// same and says how it went.
///
/// # When the runtime goes away
///
/// The flusher is a task on the tokio runtime the queue was built on. If that runtime
/// is shut down (or dropped) while the queue is still in use, the flusher is stopped
/// with it: it closes the queue, so later records answer [`Recorded::DroppedClosed`],
/// and counts it held but had not written are counted in [`Stats::lost`]; `flush` and
/// `shutdown` then fail with [`Error::NotWritten`] saying how many. Call
/// [`shutdown`](CountQueue::shutdown) before the runtime ends to write them instead.
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
#[non_exhaustive]
pub enum Recorded {
    /// On the queue: it will be written (or, if the backend refuses it for good or
    /// the flusher is stopped with its runtime, counted in [`Stats::lost`]).
    Queued,
    /// Dropped because the queue was full; counted in [`Stats::dropped_full`].
    DroppedFull,
    /// Dropped because the queue was shut down (or its flusher stopped); counted in
    /// [`Stats::dropped_closed`].
    DroppedClosed,
}

/// One request on a ring: the interned path and subject, and the Unix second, the
/// status and the method packed into one word (`second << 24 | status << 8 | method`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) path: Path,
    pub(crate) subject: Option<Subject>,
    stamp: i64,
}

impl Event {
    #[inline]
    pub(crate) fn new(
        method: Method,
        path: Path,
        subject: Option<Subject>,
        status: Option<Status>,
        second: i64,
    ) -> Event {
        // Seconds of years 1 to 9999 need 39 bits: the shift cannot overflow.
        Event {
            path,
            subject,
            stamp: (second << 24) | (i64::from(Status::pack(status)) << 8) | method as i64,
        }
    }

    #[inline]
    fn of(key: CountKey, second: i64) -> Event {
        Event::new(
            key.endpoint.method,
            key.endpoint.path,
            key.subject,
            key.status,
            second,
        )
    }

    pub(crate) fn second(self) -> i64 {
        self.stamp >> 24
    }

    pub(crate) fn key(self) -> CountKey {
        let method = Method::from_repr(self.stamp as u8).expect("packed from a Method");
        let status = Status::unpack((self.stamp >> 8) as u16);
        CountKey::of(method, self.path, self.subject, status)
    }
}

/// What the handles and the flusher share.
#[derive(Debug)]
pub(crate) struct Shared {
    lanes: Lanes,
    stats: StatsCells,
    /// The flusher made room: wakes `record_wait`.
    room: Notify,
    /// A `record_wait` found the queue full: wakes the flusher to drain now.
    full: Notify,
    /// How the flusher ended, once it has.
    ended: Mutex<Option<Ended>>,
}

/// How a flusher ended: how many accepted counts it never wrote (counted as lost),
/// and why.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub(crate) unwritten: u64,
    pub(crate) in_doubt: u64,
    pub(crate) reason: String,
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

    /// Counts one request to `path` with `method`, now, without subject or status.
    ///
    /// Never blocks, takes no lock, does not allocate. If the queue is full the request
    /// is dropped and counted in [`Stats::dropped_full`].
    #[inline]
    pub fn record(&self, method: Method, path: Path) -> Recorded {
        self.push(Event::new(method, path, None, None, clock::now_second()))
    }

    /// Counts one request with `key` (an endpoint, `(method, path)`, or a
    /// [`CountKey`] with a subject and status), now. As cheap as
    /// [`record`](CountQueue::record). A status of the wrong kind for the method (a
    /// gRPC code on an HTTP method, or the reverse) is not kept: the request is counted
    /// without it, and in [`Stats::statuses_dropped`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> count_core::Result<()> {
    /// # use std::sync::Arc;
    /// use count_core::{CountKey, CountQueue, Endpoint, Method, Path, Status, Subject};
    /// # let queue = CountQueue::builder(Arc::new(count_memory::MemoryCounter::new())).build()?;
    ///
    /// let orders = Endpoint::new(Method::Post, Path::new("/orders")?);
    /// let acme = Subject::new("acme")?;
    /// queue.record_key(CountKey::new(orders).with_subject(acme).with_status(Status::http(201)?));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn record_key(&self, key: impl Into<CountKey>) -> Recorded {
        self.push(Event::of(key.into(), clock::now_second()))
    }

    /// Counts one request with `key` made at `at` (the caller's clock), as
    /// [`record_key`](CountQueue::record_key).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a timestamp outside years 1 to 9999.
    #[inline]
    pub fn record_at(&self, key: impl Into<CountKey>, at: Timestamp) -> Result<Recorded> {
        let at = check_timestamp(at)?;
        Ok(self.push(Event::of(key.into(), floor_second(at))))
    }

    /// Counts one request with `key` made at `at`, waiting for room if the queue is
    /// full instead of dropping it: backpressure for a caller that can slow its own
    /// clients down (`Timestamp::now()` for a request made now).
    ///
    /// Cancel-safe: dropping the future before it completes records nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a timestamp outside years 1 to 9999;
    /// [`Error::Closed`] once the queue is shut down.
    pub async fn record_wait(&self, key: impl Into<CountKey>, at: Timestamp) -> Result<()> {
        let at = check_timestamp(at)?;
        self.push_wait(Event::of(key.into(), floor_second(at)))
            .await
    }

    /// Writes everything recorded before this call, and returns once it is written.
    ///
    /// # Errors
    ///
    /// The error of the failed write (the counts stay pending and are retried); the
    /// backend's refusal when it refused them for good (they are counted as lost);
    /// [`Error::NotWritten`] when the flusher was stopped with its runtime;
    /// [`Error::Closed`] after `shutdown`.
    pub async fn flush(&self) -> Result<()> {
        self.command(Command::Flush).await
    }

    /// Stops recording, writes what is pending (retrying for up to the shutdown
    /// timeout), and stops the flusher. Requests recorded afterwards are dropped and
    /// counted in [`Stats::dropped_closed`]. A later call waits for the first to finish
    /// and answers as it did.
    ///
    /// Every record that answered [`Recorded::Queued`] before is written when this
    /// returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`Error::NotWritten`] saying how many counts were not written (the backend
    /// was still failing at the shutdown timeout, or the flusher had been stopped with
    /// its runtime), counted in [`Stats::lost`], and how many more were in a write whose
    /// outcome is unknown ([`Stats::in_doubt`]). Counts the backend refused for good
    /// were reported when it refused them (by `flush`, and in [`Stats::rejected`]).
    pub async fn shutdown(&self) -> Result<()> {
        match self.command(Command::Shutdown).await {
            Err(Error::Closed) => self.ended_result(),
            other => other,
        }
    }

    /// Whether [`shutdown`](CountQueue::shutdown) was called (or the flusher stopped).
    pub fn is_closed(&self) -> bool {
        self.shared.lanes.is_closed()
    }

    /// A snapshot of what the queue has done.
    ///
    /// Requests still in a thread's lane are not seen until the flusher drains it
    /// (every drain interval, and on `flush`): after `flush` returns the snapshot is
    /// exact.
    pub fn stats(&self) -> Stats {
        self.shared
            .stats
            .snapshot(self.shared.lanes.ring.len() as u64)
    }

    // Always inlined: a call would cost a fifth of a record (saved registers, the
    // event passed through memory).
    #[inline(always)]
    fn push(&self, event: Event) -> Recorded {
        match self.shared.lanes.push(event) {
            Pushed::Queued => Recorded::Queued,
            refused => self.refused(refused),
        }
    }

    /// Counts a record the queue refused (off the hot path).
    #[cold]
    #[inline(never)]
    fn refused(&self, pushed: Pushed) -> Recorded {
        let stats = &self.shared.stats;
        if pushed == Pushed::Closed {
            stats.dropped_closed.fetch_add(1, Ordering::Relaxed);
            Recorded::DroppedClosed
        } else {
            stats.dropped_full.fetch_add(1, Ordering::Relaxed);
            Recorded::DroppedFull
        }
    }

    async fn push_wait(&self, event: Event) -> Result<()> {
        let shared = &*self.shared;
        loop {
            // Register for the wake-up before trying, so a drain between the failed
            // push and the wait cannot be missed.
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match shared.lanes.push(event) {
                Pushed::Queued => return Ok(()),
                Pushed::Closed => return Err(Error::Closed),
                Pushed::Full => {}
            }
            shared.full.notify_one();
            room.await;
        }
    }

    async fn command(&self, make: fn(oneshot::Sender<Result<()>>) -> Command) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(make(reply)).is_err() {
            return Err(self.gone());
        }
        answer.await.map_err(|_| self.gone())?
    }

    /// The error for a command the flusher can no longer take.
    fn gone(&self) -> Error {
        match self.ended_result() {
            Ok(()) => Error::Closed,
            Err(error) => error,
        }
    }

    /// `Ok` if the flusher finished normally, else how many counts it lost.
    fn ended_result(&self) -> Result<()> {
        let ended = self
            .shared
            .ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match ended {
            Some(Ended {
                unwritten,
                in_doubt,
                reason,
            }) if unwritten + in_doubt > 0 => Err(Error::NotWritten {
                count: unwritten,
                in_doubt,
                reason,
            }),
            _ => Ok(()),
        }
    }
}
