//! The handler-wide budget of pending `Add` rows and text bytes: what every stream
//! holds in memory before it is written, summed over all streams, so that many
//! streams at once cannot take more memory than the budget allows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use count_core::Error;

/// The limits and what is in use.
#[derive(Debug)]
pub(crate) struct Budget {
    max_rows: u64,
    max_text_bytes: u64,
    rows: AtomicU64,
    text_bytes: AtomicU64,
}

/// What is in use, and the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetUse {
    pub(crate) rows: u64,
    pub(crate) text_bytes: u64,
    pub(crate) max_rows: u64,
    pub(crate) max_text_bytes: u64,
}

impl Budget {
    pub(crate) fn new(max_rows: u64, max_text_bytes: u64) -> Budget {
        Budget {
            max_rows,
            max_text_bytes,
            rows: AtomicU64::new(0),
            text_bytes: AtomicU64::new(0),
        }
    }

    pub(crate) fn usage(&self) -> BudgetUse {
        BudgetUse {
            rows: self.rows.load(Relaxed),
            text_bytes: self.text_bytes.load(Relaxed),
            max_rows: self.max_rows,
            max_text_bytes: self.max_text_bytes,
        }
    }

    /// Takes `rows` and `text_bytes` if both fit. Two streams racing for the last of
    /// the budget may both be refused (each undoes its take): never both let in.
    fn take(&self, rows: u64, text_bytes: u64) -> Result<(), Error> {
        let rows_now = self.rows.fetch_add(rows, Relaxed) + rows;
        let bytes_now = self.text_bytes.fetch_add(text_bytes, Relaxed) + text_bytes;
        if rows_now <= self.max_rows && bytes_now <= self.max_text_bytes {
            return Ok(());
        }
        self.give_back(rows, text_bytes);
        Err(Error::LimitReached(format!(
            "the server's Add streams hold {} rows and {} bytes of text not yet written, \
             its limit is {} rows and {} bytes: try again later",
            rows_now - rows,
            bytes_now - text_bytes,
            self.max_rows,
            self.max_text_bytes
        )))
    }

    fn give_back(&self, rows: u64, text_bytes: u64) {
        self.rows.fetch_sub(rows, Relaxed);
        self.text_bytes.fetch_sub(text_bytes, Relaxed);
    }
}

/// One stream part's share of the budget, given back when it is dropped (written,
/// refused or abandoned alike).
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    rows: u64,
    text_bytes: u64,
}

impl Reservation {
    pub(crate) fn new(budget: Arc<Budget>) -> Reservation {
        Reservation {
            budget,
            rows: 0,
            text_bytes: 0,
        }
    }

    /// Takes `rows` and `text_bytes` more.
    ///
    /// # Errors
    ///
    /// [`Error::LimitReached`] when the budget cannot hold them; nothing is taken.
    pub(crate) fn grow(&mut self, rows: u64, text_bytes: u64) -> Result<(), Error> {
        self.budget.take(rows, text_bytes)?;
        self.rows += rows;
        self.text_bytes += text_bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.rows, self.text_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_take_within_the_limits_and_give_back_when_dropped() {
        let budget = Arc::new(Budget::new(10, 100));
        let mut first = Reservation::new(budget.clone());
        first.grow(6, 40).unwrap();
        let mut second = Reservation::new(budget.clone());
        let refused = second.grow(5, 10).unwrap_err();
        assert!(matches!(refused, Error::LimitReached(_)), "{refused}");
        assert!(refused.to_string().contains("6 rows"), "{refused}");
        // Text bytes are a limit of their own.
        assert!(second.grow(1, 61).is_err());
        second.grow(4, 60).unwrap();
        assert_eq!((budget.usage().rows, budget.usage().text_bytes), (10, 100));
        drop(first);
        assert_eq!((budget.usage().rows, budget.usage().text_bytes), (4, 60));
        drop(second);
        assert_eq!((budget.usage().rows, budget.usage().text_bytes), (0, 0));
    }
}
