//! Small numbers for the threads that record: a thread's number is the index of its
//! lane in every queue, so `record` finds its lane with one thread-local load and one
//! index, instead of a thread-local map it would have to search and borrow.
//!
//! A number is taken on a thread's first record and given back when the thread
//! exits, to be taken by a later thread: numbers stay as small as the most threads
//! ever recording at once. The number itself sits in a thread-local cell with no
//! destructor (reading it is one load); a second thread-local, whose destructor gives
//! the number back, is touched only when the number is taken.

use std::cell::Cell;
use std::sync::Mutex;

/// No number (yet, or any more).
pub(crate) const NONE: u32 = u32::MAX;

thread_local! {
    static NUMBER: Cell<u32> = const { Cell::new(NONE) };
    static RETURNS: Return = const { Return };
}

/// Numbers given back by exited threads, and the next never taken.
static NUMBERS: Mutex<Numbers> = Mutex::new(Numbers {
    free: Vec::new(),
    next: 0,
});

struct Numbers {
    free: Vec<u32>,
    next: u32,
}

/// Gives the thread's number back when the thread exits.
struct Return;

impl Drop for Return {
    fn drop(&mut self) {
        let number = NUMBER.with(|n| n.replace(NONE));
        if number != NONE {
            let mut numbers = NUMBERS.lock().unwrap_or_else(|e| e.into_inner());
            numbers.free.push(number);
        }
    }
}

/// The calling thread's number, or [`NONE`] if it has taken none.
#[inline(always)]
pub(crate) fn current() -> u32 {
    NUMBER.with(Cell::get)
}

/// Takes a number for the calling thread (the smallest free one); `None` if the
/// thread is exiting (its number could not be given back).
///
/// The mutex orders the exited thread that gave a number back before the thread that
/// takes it: whatever the first did with the number (a lane's pushes) happens before
/// what the second does.
#[cold]
pub(crate) fn take() -> Option<u32> {
    let number = current();
    if number != NONE {
        return Some(number);
    }
    // Registers the destructor that gives the number back; fails while the thread's
    // thread-locals are being torn down.
    RETURNS.try_with(|_| ()).ok()?;
    let number = {
        let mut numbers = NUMBERS.lock().unwrap_or_else(|e| e.into_inner());
        match numbers.free.iter().enumerate().min_by_key(|&(_, n)| *n) {
            Some((at, _)) => numbers.free.swap_remove(at),
            None => {
                let number = numbers.next;
                numbers.next = numbers.next.checked_add(1).filter(|&n| n != NONE)?;
                number
            }
        }
    };
    NUMBER.with(|n| n.set(number));
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_number_and_gives_it_back_when_it_exits() {
        let mine = take().unwrap();
        assert_eq!(take(), Some(mine));
        assert_eq!(current(), mine);
        let theirs = std::thread::spawn(|| take().unwrap()).join().unwrap();
        assert_ne!(theirs, mine);
        // The exited thread's number is free again: a new thread takes it (or a
        // smaller one other tests gave back).
        let next = std::thread::spawn(|| take().unwrap()).join().unwrap();
        assert!(next <= theirs, "{next} {theirs}");
    }

    #[test]
    fn threads_alive_at_once_have_distinct_numbers() {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let numbers: Vec<u32> = (0..8)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let n = take().unwrap();
                    barrier.wait();
                    n
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let mut unique = numbers.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8, "{numbers:?}");
    }
}
