//! The ledger a backend keeps for limits: [`LeaseAsk`] and [`LeaseGrant`], and the one
//! rule every backend applies to them ([`LeaseAsk::apply`]).
//!
//! For each subject, limit and window the backend holds one number, *taken*: the
//! quota handed out to replicas so far (and what the reports showed used before the
//! first lease of the window). Replicas admit requests only against quota they were
//! handed, so the requests admitted in a window never pass the amount, however many
//! replicas there are and whichever of them crash.

use super::Window;
#[cfg(doc)]
use crate::Counter;

/// A replica's request to the ledger of one subject's limit in one window: give back
/// what it did not use, and take more. Applied atomically by [`Counter::lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseAsk<'a> {
    /// The subject's text.
    pub subject: &'a str,
    /// The limit's name.
    pub limit: &'a str,
    /// The window (its start is the ledger's key; its end lets a backend forget it).
    pub window: Window,
    /// The subject's amount for the limit, as the replica's policy says.
    pub amount: u64,
    /// Hard (nothing past the amount) or soft (take what is asked, and say so).
    pub hard: bool,
    /// How much quota to take (0: only give back, or only read).
    pub want: u64,
    /// Quota this replica took earlier in the window and will not use.
    pub give_back: u64,
    /// What the reports showed the limit had used in the window before the ledger
    /// knew it: where a new window's ledger starts.
    pub seed: u64,
}

/// What the ledger handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseGrant {
    /// Quota the replica may admit against now.
    pub granted: u64,
    /// The window's *taken* afterwards: handed out to every replica, this one's grant
    /// included.
    pub taken: u64,
}

impl LeaseAsk<'_> {
    /// The rule: from the ledger's `taken` (`None` for a window it has not seen: the
    /// seed), give back, then grant `want`, for a hard limit at most half of what is
    /// left (rounded up) so that the last of the quota is shared out among the
    /// replicas asking, not stranded in one. Returns the new `taken` and the grant.
    pub fn apply(&self, taken: Option<u64>) -> LeaseGrant {
        let taken = taken.unwrap_or(self.seed).saturating_sub(self.give_back);
        let granted = if self.hard {
            let left = self.amount.saturating_sub(taken);
            self.want
                .min(if left <= 1 { left } else { left.div_ceil(2) })
        } else {
            self.want
        };
        LeaseGrant {
            granted,
            taken: taken.saturating_add(granted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(want: u64, give_back: u64) -> LeaseAsk<'static> {
        LeaseAsk {
            subject: "acme",
            limit: "daily",
            window: Window {
                start: 0,
                end: 86_400,
            },
            amount: 100,
            hard: true,
            want,
            give_back,
            seed: 7,
        }
    }

    #[test]
    fn the_ledger_never_hands_out_past_the_amount() {
        assert_eq!(
            ask(10, 0).apply(None),
            LeaseGrant {
                granted: 10,
                taken: 17
            }
        );
        assert_eq!(
            ask(100, 0).apply(Some(17)),
            LeaseGrant {
                granted: 42,
                taken: 59
            }
        );
        assert_eq!(
            ask(100, 0).apply(Some(99)),
            LeaseGrant {
                granted: 1,
                taken: 100
            }
        );
        assert_eq!(
            ask(100, 0).apply(Some(100)),
            LeaseGrant {
                granted: 0,
                taken: 100
            }
        );
        assert_eq!(
            ask(0, 30).apply(Some(100)),
            LeaseGrant {
                granted: 0,
                taken: 70
            }
        );
        assert_eq!(
            ask(5, 500).apply(Some(100)),
            LeaseGrant {
                granted: 5,
                taken: 5
            }
        );
        let soft = LeaseAsk {
            hard: false,
            ..ask(50, 0)
        };
        assert_eq!(
            soft.apply(Some(100)),
            LeaseGrant {
                granted: 50,
                taken: 150
            }
        );
    }
}
