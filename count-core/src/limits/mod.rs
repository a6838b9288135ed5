//! Limits: stop a subject at its plan's quota, on every replica, through the backend.
//!
//! A [`Policy`] names limits (which requests, over what period in which zone, how
//! many, hard or soft), plans (sets of limits) and each subject's plan. It is stored
//! in the backend ([`Counter::replace_policy`](crate::Counter::replace_policy)) and
//! read by every replica's [`Limiter`], which
//! [`CountLayer::limits`](crate::layer::CountLayer::limits) consults before a
//! request reaches the service.
//!
//! # What is guaranteed
//!
//! - **Never over.** For each subject, hard limit and window, the backend keeps a
//!   ledger of the quota it handed out ([`LeaseAsk::apply`]); a replica admits a
//!   request only against quota it was handed, so the requests admitted by every
//!   replica together never pass the amount — replicas crashing, restarting or
//!   losing the backend included. A request the limit does not count (a status it
//!   leaves out, a refusal by another limit) gives its unit back to the lease; one
//!   that ends without a status (cut off) keeps it, so ending calls early never
//!   makes them free. When a window's first lease cannot read what the reports say
//!   it used before, there is no lease: its requests wait, then are refused.
//! - **How far under, at most.** Quota handed to a replica that then crashes is
//!   never used in that window. A replica holds, per subject and limit, the rest of
//!   its lease (below half of it when it asks for the next) and the next lease: less
//!   than one and a half leases, and a lease is at most `amount / 64`
//!   ([`LimiterSettings::max_lease_share`]) and at most half of what was left when it
//!   was handed out. So a crashed replica strands less than `3 × amount / 128` (2.3 %)
//!   of each subject's limit in the window it crashed in (for an amount under 64,
//!   where a lease is one unit, at most 2 units), plus the units of requests then in
//!   flight that would have been given back; the tests check it with four
//!   processes, one SIGKILLed holding its leases. A replica that stops cleanly
//!   ([`Limiter::stop`]) or stops seeing a subject for
//!   [`LimiterSettings::idle_after`] gives its lease back.
//! - **Changes.** A replica reads the policy's version every
//!   [`LimiterSettings::reload_every`] (2 s): a changed limit is in force within that,
//!   and the leases taken under the old amount are given back then.
//!
//! # How a lease works
//!
//! A subject's first request in a window (on a replica) waits for a lease: the limiter
//! reads what the reports say the window used before (the ledger's start when no
//! replica leased yet), then asks the ledger for a few units. After that, a request
//! takes a unit from the lease with one atomic compare-and-swap; when the lease runs
//! below half, the limiter's task asks for the next, sized to the subject's rate over
//! [`LimiterSettings::lease_seconds`], while requests go on. At a steady 10,000
//! requests a second on one replica that is about one round trip a second.
//!
//! # One truth
//!
//! Admitted requests are counted as any other; what a limit used in a window is what
//! the reports show for the subject, the limit's endpoints and statuses, and the
//! window ([`used_in`]), once the counts are flushed.

mod lease;
mod limiter;
mod policy;
mod usage;
mod window;

pub use lease::{LeaseAsk, LeaseGrant};
pub use limiter::{
    Admission, Limiter, LimiterSettings, LimiterStats, MAX_LIMITS_PER_PLAN, Quota, Refusal, Ticket,
};
pub use policy::{
    Assignment, Class, EndpointText, Endpoints, Limit, LimitPeriod, MAX_AMOUNT, MAX_NAME_LEN,
    Policy, Threshold, is_quota_refusal,
};
pub use usage::{Usage, change_policy, usage};
pub use window::{Window, used_by_subject, used_in};
