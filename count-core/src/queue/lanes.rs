//! Per-thread lanes: each thread that records into a queue gets a single-producer
//! ring of its own, so `record` is a few plain stores and one release store: no atomic
//! read-modify-write, and no cache line that two recording threads fight over.
//!
//! A queue keeps its lanes in an array indexed by the recording thread's number
//! (`threads.rs`): finding one's lane is one thread-local load and one index. A lane
//! is made on a thread's first record into a queue (the one allocation, not in the
//! steady state) and handed to the flusher through a lock-free registration queue.
//! When the thread exits, its number, and so its lane, goes to the next thread that
//! takes the number. When a lane is full, `record` falls back to the queue's shared
//! ring; so do threads numbered past [`MAX_LANES`].
//!
//! # Closing without losing a record
//!
//! A record that answered `Queued` must be seen by the flusher's last drain. The
//! record checks the queue's `closed` flag and then pushes; the flusher sets the flag
//! and then drains. Without more, a thread could check, be descheduled, and push after
//! the last drain: a count stranded in a lane no one reads. Each lane has a `busy`
//! bit (in its ring's tail word), set around the check and the push. The pair "store busy, load closed" against
//! "store closed, load busy" needs a full fence on both sides to be ordered; the
//! recording side gets away with a compiler fence because the closing side issues a
//! process-wide one (`membarrier(2)` on Linux: it makes every running thread execute
//! a fence; see `fence.rs`). After it, every thread either saw `closed`
//! (and pushed nothing) or has its `busy` flag visible, and the flusher waits for it to
//! clear before the last drain. The rare paths without a lane (a thread being torn
//! down) use a shared counter with sequentially consistent operations instead.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::{ArrayQueue, SegQueue};

use super::ring::{self, Consumer, Producer};
use super::{Event, fence, threads};
use crate::{Path, Subject};

/// Threads numbered at or past this record through the shared ring.
pub(crate) const MAX_LANES: usize = 256;

/// Where a record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Onto a ring: it will be drained.
    Queued,
    /// Both rings were full.
    Full,
    /// The queue is closed: nothing was pushed.
    Closed,
}

/// The lanes of one queue, as the recording threads see them, and the gate that
/// closes them.
pub(crate) struct Lanes {
    /// Lane `n` belongs to the thread numbered `n`. In place (not boxed): one pointer
    /// less between `record` and its lane.
    slots: [Slot; MAX_LANES],
    capacity: usize,
    /// Lanes made since the flusher last looked.
    opened: SegQueue<LaneReader>,
    /// Where a record goes when its thread's lane is full or missing.
    pub(crate) ring: ArrayQueue<Event>,
    closed: AtomicBool,
    /// Records in progress that have no lane of their own.
    laneless: AtomicUsize,
}

/// The flusher's end of one lane.
pub(crate) type LaneReader = Consumer;

/// The producing end of the lane of one thread number, once that thread recorded. A
/// cache line each, so two threads' pushes never write to one line.
#[repr(align(64))]
struct Slot(UnsafeCell<Option<Producer>>);

// SAFETY: a slot is only ever accessed by the thread holding its number, and numbers
// are unique among live threads (`threads.rs`); a number passes from an exited thread
// to a new one through a mutex, which orders the first's accesses before the second's.
#[allow(unsafe_code)]
unsafe impl Sync for Slot {}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("capacity", &self.capacity)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Lanes {
    pub(crate) fn new(capacity: usize, ring_capacity: usize) -> Lanes {
        // Decides now, off the hot path, how the process-wide fence is made (and
        // registers the process for `membarrier(2)`).
        fence::init();
        Lanes {
            slots: std::array::from_fn(|_| Slot(UnsafeCell::new(None))),
            capacity,
            opened: SegQueue::new(),
            ring: ArrayQueue::new(ring_capacity),
            closed: AtomicBool::new(false),
            laneless: AtomicUsize::new(0),
        }
    }

    /// Pushes `event` onto this thread's lane, or the shared ring when the lane is
    /// full; refuses it once the queue is closed.
    #[inline(always)]
    pub(crate) fn push(&self, event: Event) -> Pushed {
        let Some(slot) = self.slots.get(threads::current() as usize) else {
            return self.push_unnumbered(event.path, event.subject, event.stamp);
        };
        // SAFETY: the slot of this thread's number is this thread's alone (see
        // `Slot`), and nothing below calls out of this function while the reference
        // lives, so no other reference to the slot can be made meanwhile (not even by
        // a record from inside a record).
        #[allow(unsafe_code)]
        let lane = unsafe { &mut *slot.0.get() };
        match lane {
            Some(producer) => self.push_on(producer, event),
            None => self.open_and_push(slot, event.path, event.subject, event.stamp),
        }
    }

    /// The push itself, on a lane: announce it (busy), check `closed`, publish.
    #[inline(always)]
    fn push_on(&self, producer: &mut Producer, event: Event) -> Pushed {
        producer.set_busy();
        // Pairs with `fence::heavy` in `close` (see the module docs).
        fence::light();
        // Clearing the busy bit is a release store: a flusher that sees it clear sees
        // the event too.
        if self.closed.load(Ordering::Relaxed) {
            producer.abort();
            Pushed::Closed
        } else if producer.has_room() {
            producer.publish(event);
            Pushed::Queued
        } else {
            let pushed = self.push_ring(event.path, event.subject, event.stamp);
            producer.abort();
            pushed
        }
    }

    /// The thread's first record: take a number, then go on as usual.
    #[cold]
    #[inline(never)]
    fn push_unnumbered(&self, path: Path, subject: Option<Subject>, stamp: i64) -> Pushed {
        let event = Event {
            path,
            subject,
            stamp,
        };
        match threads::take() {
            Some(number) if (number as usize) < MAX_LANES => self.push(event),
            // Exiting, or past the lanes: the shared ring.
            _ => self.push_laneless(event),
        }
    }

    /// The thread's first record into this queue: make its lane, then push.
    #[cold]
    #[inline(never)]
    fn open_and_push(
        &self,
        slot: &Slot,
        path: Path,
        subject: Option<Subject>,
        stamp: i64,
    ) -> Pushed {
        let event = Event {
            path,
            subject,
            stamp,
        };
        // A closed queue opens no lane: it would be an allocation no flusher ever
        // takes. (A lane opened while the queue is closing is covered by the
        // handshake: its first push checks `closed` after announcing itself.)
        if self.closed.load(Ordering::Relaxed) {
            return Pushed::Closed;
        }
        // Allocates, which may record (an allocator that counts its allocations), so
        // no reference to the slot is held meanwhile; such a record makes a lane of
        // its own, which this one replaces: the replaced lane's events are still
        // drained through its registered consumer.
        let (producer, consumer) = ring::ring(self.capacity);
        // Registered before the first push, so a flush that follows this record finds
        // the lane and the event in it.
        self.opened.push(consumer);
        // SAFETY: as in `push`; no call out of this function while it lives.
        #[allow(unsafe_code)]
        let lane = unsafe { &mut *slot.0.get() };
        let producer = lane.insert(producer);
        self.push_on(producer, event)
    }

    #[cold]
    #[inline(never)]
    fn push_ring(&self, path: Path, subject: Option<Subject>, stamp: i64) -> Pushed {
        let event = Event {
            path,
            subject,
            stamp,
        };
        match self.ring.push(event) {
            Ok(()) => Pushed::Queued,
            Err(_) => Pushed::Full,
        }
    }

    #[cold]
    #[inline(never)]
    fn push_laneless(&self, event: Event) -> Pushed {
        self.laneless.fetch_add(1, Ordering::SeqCst);
        let pushed = if self.closed.load(Ordering::SeqCst) {
            Pushed::Closed
        } else {
            self.push_ring(event.path, event.subject, event.stamp)
        };
        self.laneless.fetch_sub(1, Ordering::Release);
        pushed
    }

    /// The lanes made since the last call (the flusher's).
    pub(crate) fn take_opened(&self) -> impl Iterator<Item = LaneReader> + '_ {
        std::iter::from_fn(|| self.opened.pop())
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Closes the queue to new records, and waits (up to `patience`) until no record
    /// that could still push is in progress. `readers` are the lanes the flusher holds;
    /// lanes opened meanwhile are added to it. Returns whether every record finished.
    /// After it returns `true`, one last drain sees every record that answered
    /// `Queued`.
    pub(crate) fn close(&self, readers: &mut Vec<LaneReader>, patience: Duration) -> bool {
        self.closed.store(true, Ordering::SeqCst);
        // Every thread now either sees `closed`, or its `busy` flag is visible.
        fence::heavy();
        readers.extend(self.take_opened());
        let deadline = Instant::now() + patience;
        let quiet = |readers: &[LaneReader]| {
            readers.iter().all(|r| !r.is_busy()) && self.laneless.load(Ordering::Acquire) == 0
        };
        // A busy lane's thread is a few instructions from done, unless it was
        // descheduled between them: then it needs a time slice.
        while !quiet(readers) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        true
    }
}

/// Drains `lanes` into `sink`, and lets go of the lanes whose thread has exited.
pub(crate) fn drain(lanes: &mut Vec<LaneReader>, mut sink: impl FnMut(Event)) {
    lanes.retain_mut(|lane| {
        // Read before draining: once abandoned, nothing more can arrive.
        let abandoned = lane.is_abandoned();
        lane.drain(&mut sink);
        !abandoned
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Method, Path};

    fn event(second: i64) -> Event {
        Event::new(Method::Get, Path::new("/lane").unwrap(), None, None, second)
    }

    fn drained(lanes: &Lanes, readers: &mut Vec<LaneReader>) -> Vec<i64> {
        readers.extend(lanes.take_opened());
        let mut seen = Vec::new();
        drain(readers, |e| seen.push(e.second()));
        while let Some(e) = lanes.ring.pop() {
            seen.push(e.second());
        }
        seen.sort();
        seen
    }

    #[test]
    fn each_thread_gets_a_lane_and_exited_threads_hand_theirs_on() {
        let lanes = Arc::new(Lanes::new(4, 4));
        let mut readers = Vec::new();
        assert_eq!(lanes.push(event(1)), Pushed::Queued);
        assert_eq!(lanes.push(event(2)), Pushed::Queued);
        for s in 3..=6 {
            let other = Arc::clone(&lanes);
            std::thread::spawn(move || assert_eq!(other.push(event(s)), Pushed::Queued))
                .join()
                .unwrap();
        }
        assert_eq!(drained(&lanes, &mut readers), [1, 2, 3, 4, 5, 6]);
        // Each exited thread's number goes to the next one, and its lane with it
        // (other tests' threads may take a number meanwhile).
        assert!(
            readers.len() < 5,
            "{} lanes for 2 threads at a time",
            readers.len()
        );
    }

    #[test]
    fn threads_past_the_lanes_record_through_the_shared_ring() {
        let lanes = Arc::new(Lanes::new(4, 1024));
        let barrier = Arc::new(std::sync::Barrier::new(MAX_LANES + 8));
        let threads: Vec<_> = (0..MAX_LANES + 8)
            .map(|i| {
                let (lanes, barrier) = (Arc::clone(&lanes), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    // All alive at once: some are numbered past the lanes.
                    threads::take();
                    barrier.wait();
                    assert_eq!(lanes.push(event(i as i64)), Pushed::Queued);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let seen = drained(&lanes, &mut Vec::new());
        assert_eq!(seen.len(), MAX_LANES + 8);
    }

    #[test]
    fn a_full_lane_overflows_to_the_ring_then_refuses() {
        // A lane of 2 (a power of two already) and a shared ring of 1.
        let lanes = Lanes::new(2, 1);
        for s in 1..=3 {
            assert_eq!(lanes.push(event(s)), Pushed::Queued);
        }
        assert_eq!(lanes.push(event(4)), Pushed::Full);
        assert_eq!(drained(&lanes, &mut Vec::new()), [1, 2, 3]);
    }

    #[test]
    fn queues_have_separate_lanes_on_one_thread() {
        let (a, b) = (Lanes::new(8, 8), Lanes::new(8, 8));
        a.push(event(1));
        b.push(event(2));
        b.push(event(3));
        assert_eq!(drained(&a, &mut Vec::new()), [1]);
        assert_eq!(drained(&b, &mut Vec::new()), [2, 3]);
    }

    #[test]
    fn after_close_nothing_is_pushed_and_everything_queued_is_drained() {
        let lanes = Arc::new(Lanes::new(1 << 16, 16));
        let stop = Arc::new(AtomicBool::new(false));
        let recorders: Vec<_> = (0..4)
            .map(|_| {
                let (lanes, stop) = (Arc::clone(&lanes), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut queued = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        match lanes.push(event(1)) {
                            Pushed::Queued => queued += 1,
                            Pushed::Closed => break,
                            Pushed::Full => std::thread::yield_now(),
                        }
                    }
                    queued
                })
            })
            .collect();
        let mut readers = Vec::new();
        let mut seen = 0u64;
        for _ in 0..20 {
            readers.extend(lanes.take_opened());
            drain(&mut readers, |_| seen += 1);
            while lanes.ring.pop().is_some() {
                seen += 1;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(lanes.close(&mut readers, Duration::from_secs(5)));
        drain(&mut readers, |_| seen += 1);
        while lanes.ring.pop().is_some() {
            seen += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let queued: u64 = recorders.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(seen, queued, "every Queued record was drained");
        assert_eq!(lanes.push(event(1)), Pushed::Closed);
    }
}
