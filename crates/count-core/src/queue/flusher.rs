//! The flusher: one tokio task per [`CountQueue`](super::CountQueue) that drains the
//! event queue into [`Pending`], freezes it into batches, and writes them in order,
//! each exactly once, retrying a failed batch with the same id.
//!
//! A batch's contents never change once it has an id: a write that failed ambiguously
//! may have applied, and a retry carrying more counts would then lose them. Counts
//! that arrive meanwhile wait in `pending`, merged, until the batches ahead are written.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};
use uuid::Uuid;

use super::pending::{Kept, Pending};
use super::{Command, Event, Shared, lanes};
use crate::backoff::Backoff;
use crate::{Batch, BatchId, Counter, Error, Result};

/// The flusher's settings, checked by the builder.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) flush_interval: Duration,
    pub(crate) drain_interval: Duration,
    pub(crate) max_batch_rows: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) backoff: Backoff,
}

type Write = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

pub(crate) struct Flusher {
    shared: Arc<Shared>,
    counter: Arc<dyn Counter>,
    settings: Settings,
    writer: Uuid,
    next_seq: u64,
    pending: Pending,
    /// The recording threads' lanes.
    lanes: Vec<rtrb::Consumer<Event>>,
    /// Frozen batches, written front first.
    outbox: VecDeque<Arc<Batch>>,
    outbox_rows: usize,
    /// `flush` callers, each waiting for the batch with this seq to be written.
    waiters: Vec<(u64, oneshot::Sender<Result<()>>)>,
    /// Write now, not at the next tick or retry time (a `flush` asked).
    write_now: bool,
    retry_at: Option<Instant>,
    closing: Option<Closing>,
}

struct Closing {
    reply: Option<oneshot::Sender<Result<()>>>,
    deadline: Instant,
    last_error: Option<Error>,
}

impl Flusher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        counter: Arc<dyn Counter>,
        settings: Settings,
        pending: Pending,
    ) -> Flusher {
        Flusher {
            shared,
            counter,
            settings,
            writer: Uuid::new_v4(),
            next_seq: 0,
            pending,
            lanes: Vec::new(),
            outbox: VecDeque::new(),
            outbox_rows: 0,
            waiters: Vec::new(),
            write_now: false,
            retry_at: None,
            closing: None,
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut drain_tick = interval(self.settings.drain_interval);
        drain_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut flush_tick = interval(self.settings.flush_interval);
        flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        flush_tick.reset();
        let shared = Arc::clone(&self.shared);
        // Outside `self`, so polling it does not hold `self` borrowed.
        let mut in_flight: Option<Write> = None;
        loop {
            let retry_at = self.retry_at;
            tokio::select! {
                command = commands.recv(), if self.closing.is_none() => match command {
                    Some(Command::Flush(reply)) => self.request_flush(reply),
                    Some(Command::Shutdown(reply)) => self.close(Some(reply)),
                    // Every handle is gone: write what we hold, then stop.
                    None => self.close(None),
                },
                result = async { in_flight.as_mut().expect("guarded").await },
                    if in_flight.is_some() => {
                    in_flight = None;
                    self.written(result);
                }
                _ = drain_tick.tick() => self.drain(),
                _ = shared.full.notified() => self.drain(),
                _ = flush_tick.tick() => {
                    self.drain();
                    self.freeze_if_clear();
                }
                _ = async { sleep_until(retry_at.expect("guarded")).await },
                    if retry_at.is_some() && in_flight.is_none() => self.retry_at = None,
            }
            if in_flight.is_none() {
                in_flight = self.start_write();
            }
            if in_flight.is_none() && self.finished_closing() {
                return;
            }
        }
    }

    /// Moves every recorded event, from the lanes and the shared ring, into `pending`.
    fn drain(&mut self) {
        let shared = Arc::clone(&self.shared);
        self.lanes.extend(shared.lanes.take_opened());
        let (mut drained, mut overflowed, mut coarsened, mut lost) = (0u64, 0, 0, 0);
        let mut add = |event: Event| {
            drained += 1;
            let placed = self.pending.add(event, self.outbox_rows);
            overflowed += u64::from(placed.overflowed);
            match placed.kept {
                Kept::Exact => {}
                Kept::Coarsened => coarsened += 1,
                Kept::Lost => lost += 1,
            }
        };
        lanes::drain(&mut self.lanes, &mut add);
        // Bounded, so producers outpacing the drain cannot keep the task here forever.
        for _ in 0..shared.events.capacity() * 2 {
            let Some(event) = shared.events.pop() else {
                break;
            };
            add(event);
        }
        if drained == 0 {
            return;
        }
        let stats = &shared.stats;
        // `aggregated` first, so a snapshot never sees a count in neither place.
        stats.aggregated.fetch_add(drained - lost, Relaxed);
        stats.drained.fetch_add(drained, Relaxed);
        stats.overflowed.fetch_add(overflowed, Relaxed);
        stats.coarsened.fetch_add(coarsened, Relaxed);
        stats.lost.fetch_add(lost, Relaxed);
        self.shared.room.notify_waiters();
    }

    /// Freezes `pending` into batches unless earlier batches still wait to be
    /// written: while the backend fails, new counts keep merging into `pending`.
    fn freeze_if_clear(&mut self) {
        if self.outbox.is_empty() {
            self.freeze();
        }
    }

    fn freeze(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        for counts in self.pending.take_chunks(self.settings.max_batch_rows) {
            let id = BatchId {
                writer: self.writer,
                seq: self.next_seq,
            };
            self.next_seq += 1;
            self.outbox_rows += counts.len();
            let batch = Batch::new(id, counts).expect("counts are checked at record time");
            self.outbox.push_back(Arc::new(batch));
        }
    }

    fn request_flush(&mut self, reply: oneshot::Sender<Result<()>>) {
        self.drain();
        self.freeze();
        match self.outbox.back() {
            None => {
                let _ = reply.send(Ok(()));
            }
            Some(last) => {
                self.waiters.push((last.id().seq, reply));
                self.write_now = true;
            }
        }
    }

    fn close(&mut self, reply: Option<oneshot::Sender<Result<()>>>) {
        self.shared.closed.store(true, Relaxed);
        // Wake `record_wait` callers so they see the queue closed.
        self.shared.room.notify_waiters();
        self.drain();
        self.freeze();
        self.write_now = true;
        self.closing = Some(Closing {
            reply,
            deadline: Instant::now() + self.settings.shutdown_timeout,
            last_error: None,
        });
    }

    /// The write of the front batch, if one is due.
    fn start_write(&mut self) -> Option<Write> {
        let batch = self.outbox.front()?;
        if !self.write_now && self.retry_at.is_some() {
            return None;
        }
        self.write_now = false;
        self.retry_at = None;
        let batch = Arc::clone(batch);
        let counter = Arc::clone(&self.counter);
        let timeout = self.settings.write_timeout;
        Some(Box::pin(async move {
            match tokio::time::timeout(timeout, counter.write(&batch)).await {
                Ok(result) => result,
                Err(_) => Err(Error::ambiguous(format!(
                    "writing batch {} took longer than {timeout:?}",
                    batch.id()
                ))),
            }
        }))
    }

    fn written(&mut self, result: Result<()>) {
        let stats = &self.shared.stats;
        match result {
            Ok(()) => {
                let batch = self.outbox.pop_front().expect("the batch in flight");
                self.outbox_rows -= batch.counts().len();
                stats.written.fetch_add(batch.total(), Relaxed);
                stats.aggregated.fetch_sub(batch.total(), Relaxed);
                stats.batches_written.fetch_add(1, Relaxed);
                self.settings.backoff.reset();
                let seq = batch.id().seq;
                for (target, reply) in std::mem::take(&mut self.waiters) {
                    if target <= seq {
                        let _ = reply.send(Ok(()));
                    } else {
                        self.waiters.push((target, reply));
                    }
                }
                // Catch up at once on what merged while earlier batches waited.
                if self.outbox.is_empty() && self.closing.is_some() {
                    self.drain();
                    self.freeze();
                }
            }
            Err(error) => {
                stats.write_failures.fetch_add(1, Relaxed);
                stats.set_last_error(error.clone());
                let id = self.outbox.front().map(|b| b.id());
                tracing::warn!(batch = ?id, %error, "count: writing a batch failed; it will be retried");
                for (_, reply) in self.waiters.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
                if let Some(closing) = &mut self.closing {
                    closing.last_error = Some(error);
                }
                self.retry_at = Some(Instant::now() + self.settings.backoff.next_delay());
            }
        }
    }

    /// Whether shutdown is done (called with no write in flight): everything
    /// written, or out of time.
    fn finished_closing(&mut self) -> bool {
        let Some(closing) = &mut self.closing else {
            return false;
        };
        let done = self.outbox.is_empty();
        let out_of_time = Instant::now() >= closing.deadline;
        if !done && !out_of_time {
            return false;
        }
        let result = if done {
            Ok(())
        } else {
            let pending = self.shared.stats.aggregated.load(Relaxed);
            tracing::error!(pending, "count: shutting down with counts not written");
            Err(closing
                .last_error
                .take()
                .unwrap_or_else(|| Error::unavailable("shutdown timed out")))
        };
        if let Some(reply) = closing.reply.take() {
            let _ = reply.send(result);
        }
        true
    }
}
