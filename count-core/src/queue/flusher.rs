//! The flusher: one tokio task per [`CountQueue`](super::CountQueue) that drains the
//! lanes into [`Pending`], freezes it into batches, and writes them in order, each
//! exactly once, retrying a failed batch with the same id.
//!
//! A batch's contents never change once it has an id: a write that failed ambiguously
//! may have applied, and a retry carrying more counts would then lose them. Counts
//! that arrive meanwhile wait in `pending`, merged, until the batches ahead are written.
//!
//! Nothing it holds is lost silently: a batch the backend refuses for good (an error
//! retrying cannot cure) is counted as lost and the next one goes on; a write that
//! panics is contained and retried; and if the task is dropped before it finished
//! (its runtime shut down), its `Drop` closes the queue and counts what it held as
//! lost, so that `record` answers `DroppedClosed` and `shutdown` says how many.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};
use uuid::Uuid;

use super::lanes::{self, LaneReader};
use super::pending::{Kept, Pending};
use super::{Command, Ended, Event, Shared, clock};
use crate::backoff::Backoff;
use crate::{Batch, BatchId, Counter, Day, Error, Result};

/// The flusher's settings, checked by the builder.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) flush_interval: Duration,
    pub(crate) drain_interval: Duration,
    pub(crate) max_batch_rows: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) backoff: Backoff,
    /// The `queue` label of its metrics.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) name: &'static str,
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
    lanes: Vec<LaneReader>,
    /// Frozen batches, written front first.
    outbox: VecDeque<Arc<Batch>>,
    outbox_rows: usize,
    /// `flush` callers, each waiting for the batch with this seq to be written.
    waiters: Vec<(u64, oneshot::Sender<Result<()>>)>,
    /// Write now, not at the next tick or retry time (a `flush` asked).
    write_now: bool,
    retry_at: Option<Instant>,
    closing: Option<Closing>,
    /// A write of the front batch is in flight.
    writing: bool,
    /// A write of the front batch ended with an unknown outcome (it may be in the
    /// backend already). If the queue gives up on it, it is in doubt, not lost.
    front_in_doubt: bool,
    /// Set when `run` returns: a `Drop` without it means the task was cut short.
    finished: bool,
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
            writing: false,
            front_in_doubt: false,
            finished: false,
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
                    self.publish();
                }
                _ = drain_tick.tick() => self.drain(),
                _ = shared.full.notified() => self.drain(),
                _ = flush_tick.tick() => {
                    self.drain();
                    self.freeze_if_clear();
                    self.publish();
                }
                _ = async { sleep_until(retry_at.expect("guarded")).await },
                    if retry_at.is_some() && in_flight.is_none() => self.retry_at = None,
            }
            if in_flight.is_none() {
                in_flight = self.start_write();
            }
            if in_flight.is_none() && self.finished_closing() {
                self.finished = true;
                return;
            }
        }
    }

    /// Moves every recorded event, from the lanes and the shared ring, into `pending`.
    fn drain(&mut self) {
        let shared = Arc::clone(&self.shared);
        self.lanes.extend(shared.lanes.take_opened());
        self.pending
            .set_today(clock::now_second().div_euclid(Day::SECONDS));
        let mut tally = Tally::default();
        let mut add = |event: Event| tally.add(self.pending.add(event, self.outbox_rows));
        lanes::drain(&mut self.lanes, &mut add);
        // Bounded, so producers outpacing the drain cannot keep the task here forever.
        for _ in 0..shared.lanes.ring.capacity() * 2 {
            let Some(event) = shared.lanes.ring.pop() else {
                break;
            };
            add(event);
        }
        if tally.drained == 0 {
            return;
        }
        let stats = &shared.stats;
        // `aggregated` first, so a snapshot never sees a count in neither place.
        stats
            .aggregated
            .fetch_add(tally.drained - tally.lost, Relaxed);
        stats.drained.fetch_add(tally.drained, Relaxed);
        stats.overflowed.fetch_add(tally.overflowed, Relaxed);
        stats
            .overflowed_subjects
            .fetch_add(tally.overflowed_subjects, Relaxed);
        stats
            .statuses_dropped
            .fetch_add(tally.statuses_dropped, Relaxed);
        stats.coarsened.fetch_add(tally.coarsened, Relaxed);
        stats.lost.fetch_add(tally.lost, Relaxed);
        self.shared.room.notify_waiters();
    }

    /// Reports the queue's figures through the `metrics` facade (feature `metrics`).
    fn publish(&self) {
        #[cfg(feature = "metrics")]
        crate::metrics::publish_queue(
            self.settings.name,
            &self
                .shared
                .stats
                .snapshot(self.shared.lanes.ring.len() as u64),
        );
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
        // After this, every record that answered `Queued` is in a lane or the ring.
        let quiet = self
            .shared
            .lanes
            .close(&mut self.lanes, self.settings.shutdown_timeout);
        if !quiet {
            tracing::error!(
                "count: a record into the queue did not finish within the shutdown timeout"
            );
        }
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

    /// The write of the front batch, if one is due: on a task of its own, so that a
    /// backend that panics fails this write, not the flusher.
    fn start_write(&mut self) -> Option<Write> {
        let batch = self.outbox.front()?;
        if !self.write_now && self.retry_at.is_some() {
            return None;
        }
        self.write_now = false;
        self.retry_at = None;
        self.writing = true;
        let batch = Arc::clone(batch);
        let counter = Arc::clone(&self.counter);
        // While closing, a write may not outlive the shutdown deadline.
        let timeout = match &self.closing {
            Some(closing) => self
                .settings
                .write_timeout
                .min(closing.deadline.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1)),
            None => self.settings.write_timeout,
        };
        let id = batch.id();
        let write = tokio::spawn(async move {
            match tokio::time::timeout(timeout, counter.write(&batch)).await {
                Ok(result) => result,
                Err(_) => Err(Error::ambiguous(format!(
                    "writing batch {} took longer than {timeout:?}",
                    batch.id()
                ))),
            }
        });
        let shared = Arc::clone(&self.shared);
        Some(Box::pin(async move {
            match write.await {
                Ok(result) => result,
                Err(join) => {
                    let what = if join.is_panic() {
                        shared.stats.write_panics.fetch_add(1, Relaxed);
                        "panicked"
                    } else {
                        "was cancelled"
                    };
                    tracing::error!(batch = %id, "count: the backend {what} while writing a batch; it will be retried");
                    // It may have applied part way: retrying the same id is safe.
                    Err(Error::ambiguous(format!(
                        "the backend {what} while writing batch {id}"
                    )))
                }
            }
        }))
    }

    fn written(&mut self, result: Result<()>) {
        self.writing = false;
        if matches!(result, Err(Error::Ambiguous { .. })) {
            self.front_in_doubt = true;
        }
        match result {
            Ok(()) => {
                let batch = self.pop_front();
                self.front_in_doubt = false;
                let stats = &self.shared.stats;
                stats.written.fetch_add(batch.total(), Relaxed);
                stats.batches_written.fetch_add(1, Relaxed);
                stats.set_last_write(Timestamp::now());
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
            Err(error) if error.is_retryable() => {
                let stats = &self.shared.stats;
                stats.write_failures.fetch_add(1, Relaxed);
                stats.set_last_error(error.clone());
                let id = self.outbox.front().map(|b| b.id());
                tracing::warn!(batch = ?id, %error, "count: writing a batch failed; it will be retried");
                self.fail_waiters(&error);
                if let Some(closing) = &mut self.closing {
                    closing.last_error = Some(error);
                }
                self.retry_at = Some(Instant::now() + self.settings.backoff.next_delay());
            }
            Err(error) => {
                // Retrying cannot cure it: count the batch as lost and go on, so the
                // counts behind it are not blocked.
                let batch = self.pop_front();
                let total = batch.total();
                // An earlier attempt with an unknown outcome may have applied it.
                let in_doubt = std::mem::take(&mut self.front_in_doubt);
                let stats = &self.shared.stats;
                stats.write_failures.fetch_add(1, Relaxed);
                if in_doubt {
                    stats.in_doubt.fetch_add(total, Relaxed);
                } else {
                    stats.lost.fetch_add(total, Relaxed);
                    stats.rejected.fetch_add(total, Relaxed);
                }
                stats.set_last_error(error.clone());
                tracing::error!(batch = %batch.id(), requests = total, in_doubt, %error, "count: the backend refused a batch for good; its counts are lost");
                let (count, in_doubt) = if in_doubt { (0, total) } else { (total, 0) };
                let error = Error::NotWritten {
                    count,
                    in_doubt,
                    reason: format!("the backend refused batch {}: {error}", batch.id()),
                };
                self.fail_waiters(&error);
                if let Some(closing) = &mut self.closing {
                    closing.last_error = Some(error);
                }
                self.write_now = true;
            }
        }
    }

    /// Takes the front batch off the outbox (it was written, or refused for good).
    fn pop_front(&mut self) -> Arc<Batch> {
        let batch = self.outbox.pop_front().expect("the batch in flight");
        self.outbox_rows -= batch.counts().len();
        self.shared
            .stats
            .aggregated
            .fetch_sub(batch.total(), Relaxed);
        batch
    }

    fn fail_waiters(&mut self, error: &Error) {
        for (_, reply) in self.waiters.drain(..) {
            let _ = reply.send(Err(error.clone()));
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
        let last_error = closing.last_error.take();
        let reply = closing.reply.take();
        // Whatever is still held is never written now: say so.
        let (unwritten, in_doubt) = self.give_up();
        let reason = match &last_error {
            Some(error) => format!("the backend still failed at the shutdown timeout: {error}"),
            None => "the shutdown timeout passed".into(),
        };
        let result = match (unwritten + in_doubt, last_error) {
            (0, Some(error @ Error::NotWritten { .. })) => Err(error),
            (0, _) => Ok(()),
            _ => {
                tracing::error!(
                    unwritten,
                    in_doubt,
                    "count: shutting down with counts not written"
                );
                Err(Error::NotWritten {
                    count: unwritten,
                    in_doubt,
                    reason: reason.clone(),
                })
            }
        };
        self.set_ended(unwritten, in_doubt, &reason);
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
        true
    }

    /// Gives up on everything still held (pending, frozen, in the rings): lost, but
    /// for the front batch when a write of it is in flight or ended with an unknown
    /// outcome: that one is in doubt. Returns (lost, in doubt) in requests.
    fn give_up(&mut self) -> (u64, u64) {
        let shared = Arc::clone(&self.shared);
        let mut stranded = 0u64;
        lanes::drain(&mut self.lanes, |_| stranded += 1);
        while shared.lanes.ring.pop().is_some() {
            stranded += 1;
        }
        let in_doubt = match self.outbox.front() {
            Some(front) if self.writing || self.front_in_doubt => front.total(),
            _ => 0,
        };
        let stats = &shared.stats;
        let held = stats.aggregated.swap(0, Relaxed);
        let lost = held - in_doubt + stranded;
        stats.drained.fetch_add(stranded, Relaxed);
        stats.lost.fetch_add(lost, Relaxed);
        stats.in_doubt.fetch_add(in_doubt, Relaxed);
        self.outbox.clear();
        self.outbox_rows = 0;
        self.front_in_doubt = false;
        let _ = self.pending.take_chunks(usize::MAX);
        (lost, in_doubt)
    }

    fn set_ended(&self, unwritten: u64, in_doubt: u64, reason: &str) {
        *self.shared.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(Ended {
            unwritten,
            in_doubt,
            reason: reason.to_owned(),
        });
    }
}

impl Drop for Flusher {
    /// The task was dropped before it finished: its runtime is shutting down (or it
    /// panicked). Close the queue so no record is accepted that no one will write, and
    /// count what it held as lost.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.shared
            .lanes
            .close(&mut self.lanes, Duration::from_secs(1));
        let (lost, in_doubt) = self.give_up();
        if lost + in_doubt > 0 {
            tracing::error!(
                lost,
                in_doubt,
                "count: the queue's flusher was stopped (its runtime was shut down, or it panicked) with counts not written"
            );
        }
        self.set_ended(
            lost,
            in_doubt,
            "the queue's flusher was stopped before writing them (its tokio runtime was shut down, or it panicked)",
        );
        self.shared.room.notify_waiters();
    }
}

/// What one drain did.
#[derive(Default)]
struct Tally {
    drained: u64,
    overflowed: u64,
    statuses_dropped: u64,
    overflowed_subjects: u64,
    coarsened: u64,
    lost: u64,
}

impl Tally {
    fn add(&mut self, placed: super::pending::Placed) {
        self.drained += 1;
        self.overflowed += u64::from(placed.overflowed);
        self.statuses_dropped += u64::from(placed.status_dropped);
        self.overflowed_subjects += u64::from(placed.overflowed_subject);
        match placed.kept {
            Kept::Exact => {}
            Kept::Coarsened => self.coarsened += 1,
            Kept::Lost => self.lost += 1,
        }
    }
}
