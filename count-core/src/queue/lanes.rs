//! Per-thread lanes: each thread that records into a queue gets a single-producer
//! ring of its own, so `record` is a few plain stores and one release store: no atomic
//! read-modify-write, and no cache line that two recording threads fight over.
//!
//! A lane is made on a thread's first record into a queue (the one allocation, not
//! in the steady state) and handed to the flusher through a lock-free registration
//! queue. When the thread exits its lane is abandoned; the flusher drains it and lets
//! it go. When a lane is full, `record` falls back to the queue's shared ring.
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

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::{ArrayQueue, SegQueue};

use super::ring::{self, Consumer, Producer};
use super::{Event, fence};

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
#[derive(Debug)]
pub(crate) struct Lanes {
    /// Unique for the life of the process, unlike an address.
    queue_id: u64,
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

struct Lane {
    queue_id: u64,
    producer: Producer,
}

thread_local! {
    static LANES: RefCell<Vec<Lane>> = const { RefCell::new(Vec::new()) };
}

static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(0);

impl Lanes {
    pub(crate) fn new(capacity: usize, ring_capacity: usize) -> Lanes {
        // Decides now, off the hot path, how the process-wide fence is made (and
        // registers the process for `membarrier(2)`).
        fence::init();
        Lanes {
            queue_id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed),
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
        let on_lane = LANES.try_with(|lanes| {
            // Borrowed already: a record from inside a record (an allocator that
            // counts its allocations, say) takes the laneless path.
            let mut lanes = lanes.try_borrow_mut().ok()?;
            // Most processes record into one queue: its lane is the first.
            let lane = match lanes.first_mut() {
                Some(lane) if lane.queue_id == self.queue_id => lane,
                _ => match self.find_or_open(&mut lanes) {
                    Some(lane) => lane,
                    None => return Some(Pushed::Closed),
                },
            };
            let producer = &mut lane.producer;
            producer.set_busy();
            // Pairs with `fence::heavy` in `close` (see the module docs).
            fence::light();
            // Clearing the busy bit is a release store: a flusher that sees it clear
            // sees the event too.
            Some(if self.closed.load(Ordering::Relaxed) {
                producer.abort();
                Pushed::Closed
            } else if producer.has_room() {
                producer.publish(event);
                Pushed::Queued
            } else {
                let pushed = self.push_ring(event);
                producer.abort();
                pushed
            })
        });
        match on_lane {
            Ok(Some(pushed)) => pushed,
            _ => self.push_laneless(event),
        }
    }

    #[cold]
    #[inline(never)]
    fn push_ring(&self, event: Event) -> Pushed {
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
            self.push_ring(event)
        };
        self.laneless.fetch_sub(1, Ordering::Release);
        pushed
    }

    /// This queue's lane among the thread's lanes, made if it has none yet; `None`
    /// when it has none and the queue is closed (a closed queue opens no lane: it
    /// would be an allocation no flusher ever takes).
    #[cold]
    #[inline(never)]
    fn find_or_open<'a>(&self, lanes: &'a mut Vec<Lane>) -> Option<&'a mut Lane> {
        match lanes.iter().position(|lane| lane.queue_id == self.queue_id) {
            Some(at) => Some(&mut lanes[at]),
            // A lane opened while the queue is closing is covered by the handshake:
            // its first push checks `closed` after announcing itself.
            None if !self.closed.load(Ordering::Relaxed) => Some(self.open(lanes)),
            None => None,
        }
    }

    fn open<'a>(&self, lanes: &'a mut Vec<Lane>) -> &'a mut Lane {
        // Lanes of queues that are gone are dead weight: drop them here, off the hot path.
        lanes.retain(|lane| !lane.producer.is_abandoned());
        let (producer, consumer) = ring::ring(self.capacity);
        // Registered before the first push, so a flush that follows this record
        // finds the lane and the event in it.
        self.opened.push(consumer);
        lanes.push(Lane {
            queue_id: self.queue_id,
            producer,
        });
        lanes.last_mut().expect("just pushed")
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
    fn each_thread_gets_a_lane_and_exited_threads_are_let_go() {
        let lanes = Arc::new(Lanes::new(4, 4));
        let mut readers = Vec::new();
        assert_eq!(lanes.push(event(1)), Pushed::Queued);
        assert_eq!(lanes.push(event(2)), Pushed::Queued);
        let other = Arc::clone(&lanes);
        std::thread::spawn(move || assert_eq!(other.push(event(3)), Pushed::Queued))
            .join()
            .unwrap();
        assert_eq!(drained(&lanes, &mut readers), [1, 2, 3]);
        assert_eq!(readers.len(), 1, "the exited thread's lane is let go");
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
