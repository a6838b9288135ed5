//! Per-thread lanes: each thread that records into a queue gets a single-producer
//! ring of its own, so `record` is a plain store and a release store: no atomic
//! read-modify-write, and no cache line that two recording threads fight over.
//!
//! A lane is made on a thread's first record into a queue (the one allocation, not
//! in the steady state) and handed to the flusher through a lock-free registration
//! queue. When the thread exits its lane is abandoned; the flusher drains it and lets
//! it go. When a lane is full, `record` falls back to the queue's shared ring.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::SegQueue;
use rtrb::{Consumer, Producer, RingBuffer};

use super::Event;

/// The lanes of one queue, as the recording threads see them.
#[derive(Debug)]
pub(crate) struct Lanes {
    /// Unique for the life of the process, unlike an address.
    queue_id: u64,
    capacity: usize,
    /// Lanes made since the flusher last looked.
    opened: SegQueue<Consumer<Event>>,
}

struct Lane {
    queue_id: u64,
    producer: Producer<Event>,
}

thread_local! {
    static LANES: RefCell<Vec<Lane>> = const { RefCell::new(Vec::new()) };
}

static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(0);

impl Lanes {
    pub(crate) fn new(capacity: usize) -> Lanes {
        Lanes {
            queue_id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed),
            capacity,
            opened: SegQueue::new(),
        }
    }

    /// Pushes `event` onto this thread's lane; gives it back when the lane is full
    /// (or the thread is exiting), for the caller to try the shared ring.
    #[inline]
    pub(crate) fn push(&self, event: Event) -> Result<(), Event> {
        LANES
            .try_with(|lanes| {
                let Ok(mut lanes) = lanes.try_borrow_mut() else {
                    return Err(event);
                };
                match lanes.iter_mut().find(|lane| lane.queue_id == self.queue_id) {
                    Some(lane) => lane.producer.push(event).map_err(|_| event),
                    None => self.open(&mut lanes, event),
                }
            })
            .unwrap_or(Err(event))
    }

    #[cold]
    #[inline(never)]
    fn open(&self, lanes: &mut Vec<Lane>, event: Event) -> Result<(), Event> {
        // Lanes of queues that are gone are dead weight: drop them here, off the hot path.
        lanes.retain(|lane| !lane.producer.is_abandoned());
        let (mut producer, consumer) = RingBuffer::new(self.capacity);
        // Registered before the first push, so a flush that follows this record
        // finds the lane and the event in it.
        self.opened.push(consumer);
        let pushed = producer.push(event).map_err(|_| event);
        lanes.push(Lane {
            queue_id: self.queue_id,
            producer,
        });
        pushed
    }

    /// The lanes made since the last call (the flusher's).
    pub(crate) fn take_opened(&self) -> impl Iterator<Item = Consumer<Event>> + '_ {
        std::iter::from_fn(|| self.opened.pop())
    }
}

/// Drains `lanes` into `sink`, and lets go of the lanes whose thread has exited.
pub(crate) fn drain(lanes: &mut Vec<Consumer<Event>>, mut sink: impl FnMut(Event)) {
    lanes.retain_mut(|lane| {
        // Read before draining: once abandoned, nothing more can arrive.
        let abandoned = lane.is_abandoned();
        let chunk = lane.read_chunk(lane.slots()).expect("slots() are readable");
        chunk.into_iter().for_each(&mut sink);
        !abandoned
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, Path};

    fn event(second: i64) -> Event {
        Event::new(Method::Get, Path::new("/lane").unwrap(), second)
    }

    #[test]
    fn each_thread_gets_a_lane_and_exited_threads_are_let_go() {
        let lanes = std::sync::Arc::new(Lanes::new(4));
        let mut consumers = Vec::new();
        lanes.push(event(1)).unwrap();
        lanes.push(event(2)).unwrap();
        let other = std::sync::Arc::clone(&lanes);
        std::thread::spawn(move || other.push(event(3)).unwrap())
            .join()
            .unwrap();
        consumers.extend(lanes.take_opened());
        assert_eq!(consumers.len(), 2);
        let mut seen = Vec::new();
        drain(&mut consumers, |e| seen.push(e.second()));
        seen.sort();
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(consumers.len(), 1, "the exited thread's lane is let go");
    }

    #[test]
    fn a_full_lane_gives_the_event_back() {
        let lanes = Lanes::new(2);
        lanes.push(event(1)).unwrap();
        lanes.push(event(2)).unwrap();
        assert_eq!(lanes.push(event(3)).unwrap_err().second(), 3);
    }

    #[test]
    fn queues_have_separate_lanes_on_one_thread() {
        let (a, b) = (Lanes::new(8), Lanes::new(8));
        a.push(event(1)).unwrap();
        b.push(event(2)).unwrap();
        b.push(event(3)).unwrap();
        let got = |lanes: &Lanes| {
            let mut consumers: Vec<_> = lanes.take_opened().collect();
            let mut seen = Vec::new();
            drain(&mut consumers, |e| seen.push(e.second()));
            seen
        };
        assert_eq!(got(&a), [1]);
        assert_eq!(got(&b), [2, 3]);
    }
}
