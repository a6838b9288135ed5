//! The interners' caps count what an entry really costs: interning many distinct
//! paths and subjects allocates no more than `Path::interned().bytes` (and
//! `Subject::interned().bytes`) say, allocator overhead included. A global allocator
//! here tallies the bytes live in the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use count_core::{Path, Subject};

struct Tally;

static LIVE: AtomicI64 = AtomicI64::new(0);

/// What glibc takes for an allocation of `size` bytes: 8 bytes of header, 16-byte
/// granules, 32 bytes at least.
fn chunk(size: usize) -> i64 {
    (size + 8).div_ceil(16).max(2) as i64 * 16
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Tally {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(chunk(new_size) - chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tally = Tally;

/// Interns `n` texts made by `text(i)` with `intern`; returns (bytes the process
/// allocated meanwhile, bytes the interner accounted for).
fn measure(
    n: usize,
    text: impl Fn(usize) -> String,
    intern: impl Fn(&str),
    accounted: impl Fn() -> u64,
) -> (i64, i64) {
    // The texts are made first, so only the interner's allocations are between the
    // two readings.
    let texts: Vec<String> = (0..n).map(text).collect();
    let (live_before, accounted_before) = (LIVE.load(Ordering::Relaxed), accounted());
    for t in &texts {
        intern(t);
    }
    let allocated = LIVE.load(Ordering::Relaxed) - live_before;
    (allocated, (accounted() - accounted_before) as i64)
}

#[test]
fn the_caps_count_at_least_what_entries_allocate() {
    for (n, len) in [(300_000, 10), (20_000, 300)] {
        let (allocated, accounted) = measure(
            n,
            |i| format!("/p/{i:0width$}", width = len - 3),
            |t| {
                Path::new(t).unwrap();
            },
            || Path::interned().bytes,
        );
        assert!(
            accounted >= allocated,
            "{n} paths of {len} bytes: allocated {allocated} bytes, the cap counted {accounted}"
        );
        // And not wildly more: the cap must not refuse far below its limit either.
        assert!(
            accounted <= allocated * 2,
            "{n} paths of {len} bytes: allocated {allocated} bytes, the cap counted {accounted}"
        );
        let per_entry = allocated / n as i64;
        println!(
            "paths of {len} bytes: {per_entry} bytes an entry; counted {}",
            accounted / n as i64
        );
    }
    let (allocated, accounted) = measure(
        100_000,
        |i| format!("tenant-{i}"),
        |t| {
            Subject::new(t).unwrap();
        },
        || Subject::interned().bytes,
    );
    assert!(
        accounted >= allocated && accounted <= allocated * 2,
        "subjects: allocated {allocated} bytes, the cap counted {accounted}"
    );
}
