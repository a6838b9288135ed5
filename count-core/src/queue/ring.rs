//! A lane's ring: a bounded single-producer single-consumer queue of events, made for
//! `record`'s path. (A general-purpose ring crate cost `record` about twice the
//! instructions of this one, which showed on machines where an uncontended atomic
//! read-modify-write, the cost of the shared queue `record` is measured against, is
//! cheap.)
//!
//! - The capacity is a power of two and the indices count up forever (`u64`), so a
//!   slot is `index & mask` and "full" is `tail - head == capacity`: no wrap-around
//!   arithmetic, no division.
//! - The producer keeps its own copy of the tail and a cached copy of the head, so a
//!   push reads no shared cache line while the ring is not full.
//! - The tail word also carries the producer's *busy* bit (bit 63): set before the
//!   producer checks whether the queue is closed, cleared by the store that publishes
//!   the event. The closing handshake in `lanes.rs` waits on it.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Event;

/// Set in the tail word while a push is between its closed check and its publish.
const BUSY: u64 = 1 << 63;

/// What the producer and the consumer share.
struct Shared {
    /// Written by the producer only: the next index to fill, with [`BUSY`].
    tail: CachePadded<AtomicU64>,
    /// Written by the consumer only: the next index to read.
    head: CachePadded<AtomicU64>,
    /// The producer was dropped (its thread exited): nothing more will arrive.
    abandoned: AtomicBool,
    mask: u64,
    slots: Box<[UnsafeCell<MaybeUninit<Event>>]>,
}

// SAFETY: the slots are shared by exactly one producer and one consumer (neither half
// is `Clone`), and a slot is only ever accessed by one of them at a time: the producer
// writes slots in `[tail, head + capacity)`, the consumer reads slots in `[head, tail)`,
// and each publishes its index with a release store that the other reads with an
// acquire load before touching the slots. `Event` is `Copy`, so no slot is dropped.
#[allow(unsafe_code)]
unsafe impl Sync for Shared {}
// SAFETY: as above; an `Event` (interned pointers and an integer) may move between
// threads.
#[allow(unsafe_code)]
unsafe impl Send for Shared {}

/// Aligns to a cache line so the producer's and the consumer's indices do not share
/// one.
#[repr(align(64))]
struct CachePadded<T>(T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A ring of at least `capacity` events (rounded up to a power of two).
pub(crate) fn ring(capacity: usize) -> (Producer, Consumer) {
    let capacity = capacity.max(1).next_power_of_two();
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        tail: CachePadded(AtomicU64::new(0)),
        head: CachePadded(AtomicU64::new(0)),
        abandoned: AtomicBool::new(false),
        mask: capacity as u64 - 1,
        slots,
    });
    let producer = Producer {
        slots: shared.slots.as_ptr(),
        mask: shared.mask,
        tail_word: &*shared.tail,
        shared: Arc::clone(&shared),
        tail: 0,
        head: 0,
        capacity: capacity as u64,
    };
    (producer, Consumer { shared })
}

/// The recording thread's end.
pub(crate) struct Producer {
    shared: Arc<Shared>,
    /// Our own copy of the tail (no busy bit).
    tail: u64,
    /// The head as last read: the ring has at least `capacity - (tail - head)` free.
    head: u64,
    capacity: u64,
    /// `shared.slots`' first slot, `shared.mask` and `&shared.tail`, kept here so a
    /// push reads them from the producer's own cache line instead of through `shared`.
    slots: *const UnsafeCell<MaybeUninit<Event>>,
    mask: u64,
    tail_word: *const AtomicU64,
}

// SAFETY: `slots` and `tail_word` point into `shared`, which the producer keeps alive;
// the producer is used by one thread at a time (`&mut self` for every push).
#[allow(unsafe_code)]
unsafe impl Send for Producer {}

impl Producer {
    /// Whether there is room for one more event (reading the consumer's head only
    /// when the cached one says the ring is full).
    #[inline(always)]
    pub(crate) fn has_room(&mut self) -> bool {
        self.tail - self.head < self.capacity || self.refresh_head()
    }

    /// Reads the consumer's head; whether that made room.
    #[cold]
    #[inline(never)]
    fn refresh_head(&mut self) -> bool {
        self.head = self.shared.head.load(Ordering::Acquire);
        self.tail - self.head < self.capacity
    }

    /// Marks a push in progress. Must be followed by [`publish`](Self::publish) or
    /// [`abort`](Self::abort).
    #[inline(always)]
    pub(crate) fn set_busy(&mut self) {
        // Release, like every store of the tail: a plain (relaxed) store would not
        // continue the release sequence of the previous publish, and a consumer that
        // read this value with acquire would not be ordered after that event's write.
        self.tail_word().store(self.tail | BUSY, Ordering::Release);
    }

    #[inline(always)]
    fn tail_word(&self) -> &AtomicU64 {
        // SAFETY: points to `shared.tail`, alive as long as `shared`, which we hold.
        #[allow(unsafe_code)]
        unsafe {
            &*self.tail_word
        }
    }

    /// Writes `event` into the next slot and publishes it, clearing the busy bit.
    /// Only after [`has_room`](Self::has_room) returned true.
    #[inline(always)]
    pub(crate) fn publish(&mut self, event: Event) {
        debug_assert!(self.tail - self.head < self.capacity);
        // SAFETY: `tail & mask` is below the slot count (a power of two, `mask + 1`),
        // and `slots` points into the `Arc` we hold. `has_room` saw
        // `tail - head < capacity` with `head` read (acquire) from the consumer, so
        // the consumer is done with this slot, and it does not read it before the
        // release store of the new tail below.
        #[allow(unsafe_code)]
        unsafe {
            let slot = &*self.slots.add((self.tail & self.mask) as usize);
            (*slot.get()).write(event);
        }
        self.tail += 1;
        // Release: a consumer that sees the new tail sees the event.
        self.tail_word().store(self.tail, Ordering::Release);
    }

    /// Clears the busy bit without publishing anything.
    #[inline(always)]
    pub(crate) fn abort(&mut self) {
        self.tail_word().store(self.tail, Ordering::Release);
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.shared.abandoned.store(true, Ordering::Release);
    }
}

/// The flusher's end.
pub(crate) struct Consumer {
    shared: Arc<Shared>,
}

impl Consumer {
    /// Whether a push is between its closed check and its publish.
    pub(crate) fn is_busy(&self) -> bool {
        self.shared.tail.load(Ordering::Acquire) & BUSY != 0
    }

    /// Whether the producer is gone: once the ring is drained, nothing more comes.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.shared.abandoned.load(Ordering::Acquire)
    }

    /// Hands every published event to `sink`, oldest first.
    pub(crate) fn drain(&mut self, mut sink: impl FnMut(Event)) {
        let shared = &*self.shared;
        let tail = shared.tail.load(Ordering::Acquire) & !BUSY;
        let mut head = shared.head.load(Ordering::Relaxed);
        while head != tail {
            let slot = &shared.slots[(head & shared.mask) as usize];
            // SAFETY: `head < tail`, and the producer published the slot's event with
            // the release store of `tail` that we read with acquire; it does not
            // write the slot again before it reads our new head (below, release).
            #[allow(unsafe_code)]
            let event = unsafe { (*slot.get()).assume_init() };
            sink(event);
            head += 1;
        }
        shared.head.store(head, Ordering::Release);
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.tail)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("head", &self.shared.head.load(Ordering::Relaxed))
            .field("tail", &(self.shared.tail.load(Ordering::Relaxed) & !BUSY))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, Path};

    fn event(second: i64) -> Event {
        Event::new(Method::Get, Path::new("/ring").unwrap(), None, None, second)
    }

    fn push(producer: &mut Producer, second: i64) -> bool {
        if !producer.has_room() {
            return false;
        }
        producer.set_busy();
        producer.publish(event(second));
        true
    }

    #[test]
    fn holds_a_power_of_two_in_order_and_refuses_past_it() {
        let (mut producer, mut consumer) = ring(3);
        for s in 0..4 {
            assert!(push(&mut producer, s));
        }
        assert!(!push(&mut producer, 4), "capacity 3 rounds up to 4");
        let mut seen = Vec::new();
        consumer.drain(|e| seen.push(e.second()));
        assert_eq!(seen, [0, 1, 2, 3]);
        for s in 4..8 {
            assert!(push(&mut producer, s), "room again after the drain");
        }
        seen.clear();
        consumer.drain(|e| seen.push(e.second()));
        assert_eq!(seen, [4, 5, 6, 7]);
    }

    #[test]
    fn the_busy_bit_hides_nothing_and_is_seen_until_published() {
        let (mut producer, mut consumer) = ring(4);
        assert!(push(&mut producer, 1));
        assert!(producer.has_room());
        producer.set_busy();
        assert!(consumer.is_busy());
        let mut seen = Vec::new();
        consumer.drain(|e| seen.push(e.second()));
        assert_eq!(seen, [1], "published events drain while a push is busy");
        producer.abort();
        assert!(!consumer.is_busy());
        producer.set_busy();
        producer.publish(event(2));
        assert!(!consumer.is_busy());
        consumer.drain(|e| seen.push(e.second()));
        assert_eq!(seen, [1, 2]);
    }

    #[test]
    fn dropping_the_producer_is_seen_by_the_consumer() {
        let (producer, consumer) = ring(2);
        assert!(!consumer.is_abandoned());
        drop(producer);
        assert!(consumer.is_abandoned());
    }

    #[test]
    fn two_threads_pass_every_event_in_order() {
        const N: i64 = 200_000;
        let (mut producer, mut consumer) = ring(64);
        let writer = std::thread::spawn(move || {
            for s in 0..N {
                while !push(&mut producer, s) {
                    std::hint::spin_loop();
                }
            }
        });
        let mut next = 0;
        while next < N {
            consumer.drain(|e| {
                assert_eq!(e.second(), next);
                next += 1;
            });
        }
        writer.join().unwrap();
    }
}
