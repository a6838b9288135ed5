//! `record` does not allocate: counted by a global allocator that tallies the
//! allocations of the calling thread only (the flusher runs on another thread).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use count_core::{CountKey, CountQueue, Method, Path, Recorded, Status, Subject};
use count_memory::MemoryCounter;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn record_does_not_allocate_when_queued_dropped_or_closed_with_or_without_dimensions() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter)
        .capacity(1024)
        .runtime(runtime.handle().clone())
        .build()
        .unwrap();
    let paths: Vec<Path> = (0..16)
        .map(|i| Path::new(&format!("/alloc/{i}")).unwrap())
        .collect();
    let subjects: Vec<Subject> = (0..4)
        .map(|i| Subject::new(&format!("tenant-{i}")).unwrap())
        .collect();
    let ok = Status::http(200).unwrap();
    let at = count_core::jiff::Timestamp::from_second(1_700_000_000).unwrap();
    // Warm up: first use of thread-locals, the clock, the paths.
    queue.record(Method::Get, paths[0]);

    let mut outcomes = [0u64; 3];
    let n = allocations_during(|| {
        for i in 0..200_000 {
            let path = paths[i % paths.len()];
            let key = CountKey::of(Method::Put, path, Some(subjects[i % 4]), Some(ok));
            let recorded = match i % 3 {
                0 => queue.record(Method::Get, path),
                1 => queue.record_at((Method::Post, path), at).unwrap(),
                _ => queue.record_key(key),
            };
            outcomes[recorded as usize] += 1;
        }
    });
    assert_eq!(n, 0, "record allocated {n} times");
    // Both outcomes were exercised: the queue filled faster than it drained.
    assert!(outcomes[Recorded::Queued as usize] > 0);
    assert!(outcomes[Recorded::DroppedFull as usize] > 0, "{outcomes:?}");

    runtime.block_on(queue.shutdown()).unwrap();
    let n = allocations_during(|| {
        for _ in 0..1000 {
            assert_eq!(queue.record(Method::Get, paths[1]), Recorded::DroppedClosed);
        }
    });
    assert_eq!(n, 0, "record after shutdown allocated {n} times");
}
