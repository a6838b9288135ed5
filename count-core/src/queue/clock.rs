//! A coarse wall clock for the hot path: one thread stores the current Unix second
//! in an atomic just after each second begins, so `record` stamps an event with one
//! relaxed load instead of a clock call.
//!
//! Events are kept at whole-second resolution anyway (a bucket is whole seconds), so
//! the only error is the thread's wake-up latency after each second boundary
//! (typically tens of microseconds): a request in that sliver is stamped with the
//! second before. Totals are never affected, only which bucket takes such a request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static NOW: AtomicI64 = AtomicI64::new(0);
static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

/// Starts the clock thread once per process; later calls return at once.
pub(crate) fn start() -> Result<(), String> {
    STARTED
        .get_or_init(|| {
            NOW.store(system_now().0, Ordering::Relaxed);
            std::thread::Builder::new()
                .name("count-clock".into())
                .spawn(tick)
                .map(drop)
                .map_err(|e| format!("cannot start the count-clock thread: {e}"))
        })
        .clone()
}

/// The current Unix second, as of the last tick.
#[inline]
pub(crate) fn now_second() -> i64 {
    NOW.load(Ordering::Relaxed)
}

fn tick() {
    loop {
        let (second, nanos) = system_now();
        NOW.store(second, Ordering::Relaxed);
        // Wake just after the next second begins.
        std::thread::sleep(Duration::from_nanos(1_000_000_000 - u64::from(nanos)));
    }
}

fn system_now() -> (i64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        // A clock set before 1970: still exact, counted down from the epoch.
        Err(e) => {
            let d = e.duration();
            let nanos = d.subsec_nanos();
            let second = -(d.as_secs() as i64) - i64::from(nanos > 0);
            (second, if nanos > 0 { 1_000_000_000 - nanos } else { 0 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_system_clock() {
        start().unwrap();
        for _ in 0..3 {
            let before = system_now().0;
            let coarse = now_second();
            let after = system_now().0;
            // At most one tick behind, never ahead.
            assert!(
                coarse <= after && coarse >= before - 1,
                "{before} {coarse} {after}"
            );
            std::thread::sleep(Duration::from_millis(600));
        }
    }
}
