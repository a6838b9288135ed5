//! Asymmetric fences for the lanes' closing handshake (see `lanes.rs`): a recording
//! thread pays a compiler fence ([`light`]), and the rare closing side pays for a
//! fence on every thread of the process ([`heavy`]): Linux's `membarrier(2)` with
//! `MEMBARRIER_CMD_PRIVATE_EXPEDITED`. Where that is missing (another OS, an old
//! kernel, a sandbox that refuses it), both sides issue a full fence instead: correct,
//! only slower to record.

use std::sync::atomic::{AtomicU8, Ordering, compiler_fence, fence};

const UNKNOWN: u8 = 0;
const MEMBARRIER: u8 = 1;
const FULL_FENCES: u8 = 2;

/// Decided once, by [`init`], before any queue records: never changes afterwards.
static STRATEGY: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Picks the strategy (registering the process for `membarrier` when it can). Called
/// when a queue is built, off the hot path; later calls return at once.
pub(crate) fn init() {
    if STRATEGY.load(Ordering::Acquire) != UNKNOWN {
        return;
    }
    let strategy = if sys::register() {
        MEMBARRIER
    } else {
        FULL_FENCES
    };
    // Two racing `init`s reach the same answer.
    let _ = STRATEGY.compare_exchange(UNKNOWN, strategy, Ordering::AcqRel, Ordering::Acquire);
}

/// The recording side's fence: orders its store before its load, given that the
/// other side calls [`heavy`].
#[inline(always)]
pub(crate) fn light() {
    if STRATEGY.load(Ordering::Relaxed) == MEMBARRIER {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The closing side's fence: when it returns, every thread of the process has
/// executed a full fence since it was called.
pub(crate) fn heavy() {
    if STRATEGY.load(Ordering::Acquire) == MEMBARRIER {
        sys::barrier();
    } else {
        fence(Ordering::SeqCst);
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sys {
    const QUERY: libc::c_int = 0;
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier(2) takes two integers and touches no memory of ours;
        // an unsupported command only returns an error.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_int) }
    }

    /// Whether the private expedited command is supported and now registered.
    pub(super) fn register() -> bool {
        let supported = membarrier(QUERY);
        supported >= 0
            && supported & libc::c_long::from(PRIVATE_EXPEDITED) != 0
            && supported & libc::c_long::from(REGISTER_PRIVATE_EXPEDITED) != 0
            && membarrier(REGISTER_PRIVATE_EXPEDITED) == 0
    }

    pub(super) fn barrier() {
        // Registered in `init`, so it should not fail. If it ever does (a process
        // restored from a checkpoint, say), there is nothing better to do than a fence
        // of our own and a loud log: panicking here would abort a shutdown.
        if membarrier(PRIVATE_EXPEDITED) != 0 {
            tracing::error!(
                error = %std::io::Error::last_os_error(),
                "count: membarrier(PRIVATE_EXPEDITED) failed after registering; a record racing this shutdown could be missed"
            );
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn barrier() {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_strategy_once_and_both_fences_run() {
        init();
        let strategy = STRATEGY.load(Ordering::Acquire);
        assert_ne!(strategy, UNKNOWN);
        init();
        assert_eq!(STRATEGY.load(Ordering::Acquire), strategy);
        light();
        heavy();
        #[cfg(target_os = "linux")]
        assert_eq!(strategy, MEMBARRIER, "this kernel has membarrier(2)");
    }
}
