//! [`Limiter`]: admits requests against quota leased from the backend.
//!
//! The hot path ([`Limiter::admit_now`]) looks the subject up in a lock-free map, and
//! for each limit that covers the request takes one unit from the lease it holds:
//! one compare-and-swap on an atomic word that packs the lease's window (an epoch)
//! and what is left of it. No lock, no allocation, no I/O. When a lease runs low the
//! request pushes its slot onto a lock-free queue and wakes the limiter's task, which
//! leases more from the backend ([`Counter::lease`]) while requests go on.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::lease::LeaseAsk;
use super::policy::{Limit, LimitPeriod, Policy};
use super::window::{Window, used_in};
use crate::queue::clock;
use crate::{Counter, Error, Method, Result, Status, Subject};

/// The most limits a plan may have (a [`Ticket`] keeps one bit and one epoch each).
pub const MAX_LIMITS_PER_PLAN: usize = 16;

const LEFT_BITS: u32 = 48;

/// How long one backend call of the limiter's task may take: a lease that hangs
/// would otherwise leave its slot asked for ever.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(5);
const LEFT_MASK: u64 = (1 << LEFT_BITS) - 1;

/// How a [`Limiter`] leases and reloads.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LimiterSettings {
    /// How often the policy's version is read from the backend: a change takes
    /// effect on every replica within this (and a lease already taken under the old
    /// amount is given back then). Default 2 s.
    pub reload_every: Duration,
    /// How many seconds of a subject's rate one lease covers: fewer round trips for
    /// more, less quota held by one replica for fewer. Default 1 s.
    pub lease_seconds: f64,
    /// The largest lease, as a share of the amount: 1/64 by default. A replica that
    /// crashes strands less than one and a half of these per subject and limit.
    pub max_lease_share: u64,
    /// A lease unused this long is given back, so a replica that stopped seeing a
    /// subject does not strand its quota. Default 5 s.
    pub idle_after: Duration,
    /// How long a request waits for a subject's first lease (or a refill that a
    /// burst outran) before it is refused with `Retry-After: 1`. Default 2 s.
    pub wait_at_most: Duration,
}

impl Default for LimiterSettings {
    fn default() -> LimiterSettings {
        LimiterSettings {
            reload_every: Duration::from_secs(2),
            lease_seconds: 1.0,
            max_lease_share: 64,
            idle_after: Duration::from_secs(5),
            wait_at_most: Duration::from_secs(2),
        }
    }
}

/// Enforces a [`Policy`] stored in a [`Counter`]: see the [module docs](super).
///
/// Cloning is one reference count; every clone is the same limiter.
#[derive(Debug, Clone)]
pub struct Limiter {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    counter: Arc<dyn Counter>,
    settings: LimiterSettings,
    /// Who is on which plan: replaced whole when the policy changes, read by the
    /// hot path through each thread's copy of the `Arc` ([`Limiter::with_plans`]).
    plans: Mutex<Arc<PlansAt>>,
    /// The generation of `plans`, for a thread to see at once that its copy is old
    /// (the copy's own generation is the one inside it).
    generation: AtomicU64,
    /// Tells this limiter's plans apart in a thread's cache.
    id: u64,
    /// Slots whose lease ran low or out, for the task.
    asks: ArrayQueue<Arc<Slot>>,
    wake: AtomicWaker,
    version: AtomicU64,
    stop: AtomicBool,
    stopped: Notify,
    stats: Cells,
}

#[derive(Debug, Default)]
struct Cells {
    admitted: AtomicU64,
    refused: AtomicU64,
    waits: AtomicU64,
    leases: AtomicU64,
    lease_failures: AtomicU64,
    asks_dropped: AtomicU64,
    unassigned_subjects: AtomicU64,
}

/// What a [`Limiter`] did, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimiterStats {
    /// Units of quota used by admitted requests: one per request and limit that
    /// covered it (a request under two limits counts twice).
    pub admitted: u64,
    /// Requests refused.
    pub refused: u64,
    /// Requests that waited for a lease (a subject's first in a window, or a burst
    /// that outran its refill).
    pub waits: u64,
    /// Round trips to the backend's ledger.
    pub leases: u64,
    /// Round trips that failed (logged); requests meanwhile wait, then are refused.
    pub lease_failures: u64,
    /// Asks for a lease the queue had no room for; the next request asks again.
    pub asks_dropped: u64,
    /// Subjects of the policy that could not be interned (the subject budget is
    /// spent): their requests pass unlimited.
    pub unassigned_subjects: u64,
    /// The policy's version in force.
    pub policy_version: u64,
}

/// Who is on which plan.
type Plans = HashMap<Subject, Arc<Assigned>, foldhash::fast::RandomState>;

/// The plans, and their generation: together, so a ticket's generation always names
/// the plans its slot indices are of.
#[derive(Debug, Default)]
struct PlansAt {
    generation: u64,
    plans: Plans,
}

/// Gives each limiter its own [`Shared::id`].
static NEXT_LIMITER: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's copy of the plans of the limiter it last admitted for: its id,
    /// the generation, and the plans. Taken again (under the mutex) only when the
    /// policy changed, or another limiter admits on this thread.
    static PLANS: RefCell<Option<(u64, Arc<PlansAt>)>> = const { RefCell::new(None) };
}

/// One subject's plan, as the hot path reads it.
#[derive(Debug)]
struct Assigned {
    slots: Box<[Arc<Slot>]>,
}

/// One subject's lease of one limit.
#[derive(Debug)]
struct Slot {
    subject: Subject,
    name: Arc<str>,
    limit: Arc<Limit>,
    amount: u64,
    /// The limit covers every endpoint / counts some statuses only: read by the hot
    /// path without following `limit`.
    covers_all: bool,
    selective: bool,
    /// The epoch of the lease's window (16 bits) and what is left of it (48 bits).
    state: AtomicU64,
    /// Units leased in all, and given back to the ledger in all: what this slot
    /// admitted is their difference less what is left.
    leased_all: AtomicU64,
    returned_all: AtomicU64,
    /// Each epoch's window, by `epoch % 4`: written before the epoch is published,
    /// and not again for three more windows.
    windows: [(AtomicI64, AtomicI64); 4],
    /// The ledger's taken after this replica's last lease.
    taken: AtomicU64,
    /// Ask for more below this many left.
    low: AtomicU64,
    /// The ledger had nothing left: refuse at once until this second.
    refused_until: AtomicI64,
    /// Queued for the task, or being leased.
    asked: AtomicBool,
    /// For the task: units handed to this slot in the window, and when the last
    /// lease came (milliseconds), to size the next lease by the rate.
    leased: AtomicU64,
    used_at_lease: AtomicU64,
    lease_at_ms: AtomicI64,
    /// For the task: what was left at its last idle check, and since when.
    idle_left: AtomicU64,
    idle_since_ms: AtomicI64,
    refilled: Notify,
    /// The dropped slot's lease was given back (a policy change).
    retired: AtomicBool,
}

fn pack(epoch: u64, left: u64) -> u64 {
    (epoch << LEFT_BITS) | left.min(LEFT_MASK)
}

fn unpack(state: u64) -> (u64, u64) {
    (state >> LEFT_BITS, state & LEFT_MASK)
}

impl Slot {
    fn new(subject: Subject, name: Arc<str>, limit: Arc<Limit>, amount: u64) -> Slot {
        let never = || (AtomicI64::new(0), AtomicI64::new(0));
        Slot {
            subject,
            name,
            covers_all: matches!(limit.endpoints, super::policy::Endpoints::All),
            selective: !limit.statuses.is_empty(),
            limit,
            amount,
            state: AtomicU64::new(0),
            leased_all: AtomicU64::new(0),
            returned_all: AtomicU64::new(0),
            windows: [never(), never(), never(), never()],
            taken: AtomicU64::new(0),
            low: AtomicU64::new(0),
            refused_until: AtomicI64::new(i64::MIN),
            asked: AtomicBool::new(false),
            leased: AtomicU64::new(0),
            used_at_lease: AtomicU64::new(0),
            lease_at_ms: AtomicI64::new(0),
            idle_left: AtomicU64::new(0),
            idle_since_ms: AtomicI64::new(0),
            refilled: Notify::new(),
            retired: AtomicBool::new(false),
        }
    }

    fn window(&self, epoch: u64) -> Window {
        let (start, end) = &self.windows[(epoch % 4) as usize];
        Window {
            start: start.load(Acquire),
            end: end.load(Acquire),
        }
    }

    /// Takes one unit of the lease for the window holding `now`.
    fn take(&self, now: i64) -> Take {
        let mut state = self.state.load(Acquire);
        loop {
            let (epoch, left) = unpack(state);
            let window = self.window(epoch);
            if !(window.start..window.end).contains(&now) {
                return Take::Stale;
            }
            if left == 0 {
                return if now < self.refused_until.load(Relaxed) {
                    Take::Out(window)
                } else {
                    Take::Empty
                };
            }
            match self
                .state
                .compare_exchange_weak(state, state - 1, AcqRel, Acquire)
            {
                Ok(_) => return Take::Took(epoch as u16, left - 1),
                Err(now_state) => state = now_state,
            }
        }
    }

    /// Gives back one unit taken in `epoch`, if its window is still the lease's.
    fn give(&self, epoch: u16) {
        let _ = self.state.fetch_update(AcqRel, Acquire, |state| {
            let (now_epoch, left) = unpack(state);
            (now_epoch as u16 == epoch && left < LEFT_MASK).then_some(state + 1)
        });
    }

    /// Units this slot admitted against (leased, less given back, less left).
    fn used(&self) -> u64 {
        let (_, left) = unpack(self.state.load(Relaxed));
        self.leased_all
            .load(Relaxed)
            .saturating_sub(self.returned_all.load(Relaxed))
            .saturating_sub(left)
    }

    /// What is left for the subject in the window, as far as this replica knows: the
    /// ledger's untaken quota, and its own lease.
    fn remaining(&self) -> u64 {
        let (_, left) = unpack(self.state.load(Relaxed));
        self.amount
            .saturating_sub(self.taken.load(Relaxed))
            .saturating_add(left)
    }
}

enum Take {
    Took(u16, u64),
    /// No lease for the window holding now.
    Stale,
    /// The lease is used up; more may come.
    Empty,
    /// The ledger has nothing left in this window.
    Out(Window),
}

/// Ready when any of `notified` is (a refill of any slot the request waits on).
async fn any_of(notified: Vec<tokio::sync::futures::Notified<'_>>) {
    if notified.is_empty() {
        // Nothing to wait on (the lease came meanwhile): look again shortly.
        tokio::time::sleep(Duration::from_millis(1)).await;
        return;
    }
    let mut notified: Vec<_> = notified.into_iter().map(Box::pin).collect();
    poll_fn(|cx| {
        if notified.iter_mut().any(|n| n.as_mut().poll(cx).is_ready()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// The limit a response's headers describe: the one with the least left.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quota {
    /// The limit's name.
    pub limit: Arc<str>,
    /// Its period.
    pub period: LimitPeriod,
    /// The subject's amount.
    pub amount: u64,
    /// What is left, as far as this replica knows (quota leased to other replicas
    /// counts as used until they give it back).
    pub remaining: u64,
    /// Seconds until the window ends.
    pub reset: u64,
    /// The window's length in seconds.
    pub window: u64,
    /// Hard or soft.
    pub hard: bool,
}

/// What [`Limiter::admit_now`] decided.
#[derive(Debug)]
#[must_use]
pub enum Admission {
    /// No limit applies: no subject, no plan, or no limit of the plan covers the
    /// endpoint.
    Untouched,
    /// Admitted: settle the ticket with the response's status.
    Admitted(Ticket),
    /// Refused (a hard limit's quota is used up in this window).
    Refused(Refusal),
    /// No lease yet for the window (a subject's first request in it, here) or a
    /// burst outran the refill: await [`Limiter::admit`] instead.
    Wait,
}

/// An admitted request's hold on its limits' quota: settle it with the response's
/// status ([`Limiter::settle`]), and a status a limit does not count gives its unit
/// back. It holds no reference (taking one would cost the hot path an atomic
/// read-modify-write): the limiter finds the slots again when it settles. Dropped
/// unsettled, its units stay used (never more admitted than the amount).
#[derive(Debug)]
#[must_use = "settle it with Limiter::settle, or its units stay used"]
pub struct Ticket {
    subject: Subject,
    /// The plans' generation the slots were taken in.
    generation: u64,
    /// Which of the subject's slots a unit was taken from, and which of them count
    /// some statuses only (those may give it back when the response comes).
    taken: u16,
    selective: u16,
    epochs: [u16; MAX_LIMITS_PER_PLAN],
    now: i64,
}

impl Ticket {
    fn slots<'a>(&self, assigned: &'a Assigned) -> impl Iterator<Item = (&'a Arc<Slot>, u16)> {
        let (taken, epochs) = (self.taken, self.epochs);
        assigned
            .slots
            .iter()
            .enumerate()
            .filter(move |(i, _)| taken & (1 << i) != 0)
            .map(move |(i, slot)| (slot, epochs[i]))
    }
}

/// Whether a slot of `old` can go on enforcing `new`: what it counts and when are
/// the same (thresholds and the like may differ), so its lease stays good.
fn enforces_alike(old: &Limit, new: &Limit) -> bool {
    old.endpoints == new.endpoints
        && old.statuses == new.statuses
        && old.period == new.period
        && old.zone == new.zone
        && old.hard == new.hard
}

/// Gives back every unit `ticket` took from `assigned` (another limit refused the
/// request, or it must wait).
fn give_all_back(assigned: &Assigned, ticket: &Ticket) {
    for (slot, epoch) in ticket.slots(assigned) {
        slot.give(epoch);
    }
}

/// A refused request: which limit refused it, and when to try again.
#[derive(Debug)]
pub struct Refusal {
    assigned: Option<Arc<Assigned>>,
    slot: u8,
    /// Seconds until a retry may be admitted.
    pub retry_after: u64,
    now: i64,
}

impl Refusal {
    /// The limit that refused, for the response's headers (`None` when the lease
    /// could not be had in time).
    pub fn quota(&self) -> Option<Quota> {
        let assigned = self.assigned.as_ref()?;
        let mut quota = quota_of(&assigned.slots[usize::from(self.slot)], self.now);
        quota.remaining = 0;
        Some(quota)
    }
}

fn quota_of(slot: &Slot, now: i64) -> Quota {
    let (epoch, _) = unpack(slot.state.load(Relaxed));
    let window = slot.window(epoch);
    Quota {
        limit: Arc::clone(&slot.name),
        period: slot.limit.period,
        amount: slot.amount,
        remaining: slot.remaining().min(slot.amount),
        reset: window.seconds_left(now),
        window: (window.end - window.start).max(0) as u64,
        hard: slot.limit.hard,
    }
}

impl Limiter {
    /// A limiter enforcing the policy stored in `counter`: reads it, and starts the
    /// task that leases and reloads on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the policy cannot be read; [`Error::Unavailable`] outside a tokio
    /// runtime.
    pub async fn start(counter: Arc<dyn Counter>, settings: LimiterSettings) -> Result<Limiter> {
        let runtime = Handle::try_current()
            .map_err(|_| Error::unavailable("a Limiter runs on a tokio runtime"))?;
        clock::start().map_err(Error::unavailable)?;
        let limiter = Limiter {
            shared: Arc::new(Shared {
                counter,
                settings,
                plans: Mutex::new(Arc::default()),
                generation: AtomicU64::new(0),
                id: NEXT_LIMITER.fetch_add(1, Relaxed),
                asks: ArrayQueue::new(1 << 16),
                wake: AtomicWaker::new(),
                version: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                stopped: Notify::new(),
                stats: Cells::default(),
            }),
        };
        limiter.reload().await?;
        runtime.spawn(limiter.clone().run());
        Ok(limiter)
    }

    /// Decides at once whether a request of `subject` to `method path` may go on.
    /// Lock-free, allocation-free, no I/O.
    pub fn admit_now(&self, subject: Option<Subject>, method: Method, path: &str) -> Admission {
        let Some(subject) = subject else {
            return Admission::Untouched;
        };
        self.with_plans(|generation, plans| {
            self.admit_planned(subject, generation, plans.get(&subject), method, path)
        })
    }

    fn admit_planned(
        &self,
        subject: Subject,
        generation: u64,
        assigned: Option<&Arc<Assigned>>,
        method: Method,
        path: &str,
    ) -> Admission {
        let Some(assigned) = assigned else {
            return Admission::Untouched;
        };
        let now = clock::now_second();
        let stats = &self.shared.stats;
        let mut ticket = Ticket {
            subject,
            generation,
            taken: 0,
            selective: 0,
            epochs: [0; MAX_LIMITS_PER_PLAN],
            now,
        };
        for (i, slot) in assigned.slots.iter().enumerate() {
            if !(slot.covers_all || slot.limit.covers(method, path)) {
                continue;
            }
            match slot.take(now) {
                Take::Took(epoch, left) => {
                    ticket.taken |= 1 << i;
                    ticket.selective |= u16::from(slot.selective) << i;
                    ticket.epochs[i] = epoch;
                    if left < slot.low.load(Relaxed) {
                        self.ask(slot);
                    }
                }
                Take::Out(window) if slot.limit.hard => {
                    // No ask: the ledger said none is left until `refused_until`.
                    give_all_back(assigned, &ticket);
                    stats.refused.fetch_add(1, Relaxed);
                    return Admission::Refused(Refusal {
                        assigned: Some(Arc::clone(assigned)),
                        slot: i as u8,
                        retry_after: window.seconds_left(now),
                        now,
                    });
                }
                Take::Out(_) | Take::Stale | Take::Empty => {
                    self.ask(slot);
                    give_all_back(assigned, &ticket);
                    return Admission::Wait;
                }
            }
        }
        if ticket.taken == 0 {
            // No limit of the plan covers this endpoint.
            return Admission::Untouched;
        }
        Admission::Admitted(ticket)
    }
}

impl Limiter {
    /// [`admit_now`](Limiter::admit_now), waiting (a bounded while) when it says
    /// [`Admission::Wait`]: for a subject's first lease in a window, or a refill a
    /// burst outran. Refused with `Retry-After: 1` when no lease came in time.
    pub async fn admit(&self, subject: Option<Subject>, method: Method, path: &str) -> Admission {
        let first = self.admit_now(subject, method, path);
        if !matches!(first, Admission::Wait) {
            return first;
        }
        self.shared.stats.waits.fetch_add(1, Relaxed);
        let deadline = tokio::time::Instant::now() + self.shared.settings.wait_at_most;
        loop {
            let slots = self.waiting_slots(subject, method, path);
            let notified: Vec<_> = slots.iter().map(|s| s.refilled.notified()).collect();
            match self.admit_now(subject, method, path) {
                Admission::Wait => {}
                decided => return decided,
            }
            let waited = tokio::time::timeout_at(deadline, any_of(notified)).await;
            if waited.is_err() {
                return match self.admit_now(subject, method, path) {
                    Admission::Wait => {
                        self.shared.stats.refused.fetch_add(1, Relaxed);
                        Admission::Refused(Refusal {
                            assigned: None,
                            slot: 0,
                            retry_after: 1,
                            now: clock::now_second(),
                        })
                    }
                    decided => decided,
                };
            }
        }
    }

    /// Settles `ticket` with the response's status (`None`: it ended without one):
    /// each limit that does not count that status gets its unit back. Costs nothing
    /// more when every limit that took a unit counts every status.
    pub fn settle(&self, ticket: Ticket, status: Option<Status>) {
        // A request that ended without a status (cut off, or its stream reset before
        // the trailers) keeps its units: else a client could end every call early
        // and never pay for a limit that counts some statuses only.
        let Some(status) = status else {
            return;
        };
        if ticket.selective == 0 && !super::policy::is_quota_refusal(status) {
            return;
        }
        self.with_plans(|generation, plans| {
            // After a policy change the slots may be others: keep the units.
            let Some(assigned) = plans
                .get(&ticket.subject)
                .filter(|_| generation == ticket.generation)
            else {
                return;
            };
            for (slot, epoch) in ticket.slots(assigned) {
                if !slot.limit.counts_status(Some(status)) {
                    slot.give(epoch);
                }
            }
        });
    }

    /// Calls `f` with what the `RateLimit` header says of `ticket`'s limit with the
    /// least left: its name, what is left, and the seconds to its window's end.
    pub fn with_remaining<R>(
        &self,
        ticket: &Ticket,
        f: impl FnOnce(&str, u64, u64) -> R,
    ) -> Option<R> {
        self.with_plans(|generation, plans| {
            let assigned = plans
                .get(&ticket.subject)
                .filter(|_| generation == ticket.generation)?;
            let (slot, _) = ticket
                .slots(assigned)
                .min_by_key(|(slot, _)| slot.remaining())?;
            let (epoch, _) = unpack(slot.state.load(Relaxed));
            let reset = slot.window(epoch).seconds_left(ticket.now);
            Some(f(&slot.name, slot.remaining().min(slot.amount), reset))
        })
    }

    /// The limit with the least left of `ticket`, for headers or a log.
    pub fn quota(&self, ticket: &Ticket) -> Option<Quota> {
        self.with_plans(|generation, plans| {
            let assigned = plans
                .get(&ticket.subject)
                .filter(|_| generation == ticket.generation)?;
            let (slot, _) = ticket
                .slots(assigned)
                .min_by_key(|(slot, _)| slot.remaining())?;
            Some(quota_of(slot, ticket.now))
        })
    }

    /// The slots of `subject` that cover the endpoint and hold no usable lease.
    fn waiting_slots(
        &self,
        subject: Option<Subject>,
        method: Method,
        path: &str,
    ) -> Vec<Arc<Slot>> {
        let Some(subject) = subject else {
            return Vec::new();
        };
        let now = clock::now_second();
        let assigned = self.with_plans(|_, plans| plans.get(&subject).cloned());
        assigned.map_or_else(Vec::new, |assigned| {
            assigned
                .slots
                .iter()
                .filter(|s| s.limit.covers(method, path))
                .filter(|s| {
                    let (epoch, left) = unpack(s.state.load(Acquire));
                    let w = s.window(epoch);
                    left == 0 || !(w.start..w.end).contains(&now)
                })
                .cloned()
                .collect()
        })
    }

    /// Runs `f` on the plans in force, from this thread's copy: no lock, no
    /// reference count, unless the policy changed since this thread last looked.
    fn with_plans<R>(&self, f: impl FnOnce(u64, &Plans) -> R) -> R {
        let shared = &*self.shared;
        let generation = shared.generation.load(Acquire);
        PLANS.with(|cached| {
            let mut cached = cached.borrow_mut();
            let current = matches!(&*cached,
                Some((id, at)) if *id == shared.id && at.generation == generation);
            if !current {
                let plans = Arc::clone(&shared.plans.lock().unwrap_or_else(|e| e.into_inner()));
                *cached = Some((shared.id, plans));
            }
            let (_, at) = cached.as_ref().expect("just set");
            f(at.generation, &at.plans)
        })
    }

    /// Every slot of the plans in force.
    fn all_slots(&self) -> Vec<Arc<Slot>> {
        let at = Arc::clone(&self.shared.plans.lock().unwrap_or_else(|e| e.into_inner()));
        at.plans
            .values()
            .flat_map(|a| a.slots.iter().cloned())
            .collect()
    }

    /// Queues `slot` for a lease, once.
    fn ask(&self, slot: &Arc<Slot>) {
        if slot.asked.swap(true, AcqRel) {
            return;
        }
        if self.shared.asks.push(Arc::clone(slot)).is_err() {
            slot.asked.store(false, Release);
            self.shared.stats.asks_dropped.fetch_add(1, Relaxed);
            return;
        }
        self.shared.wake.wake();
    }

    /// What the limiter did.
    pub fn stats(&self) -> LimiterStats {
        let c = &self.shared.stats;
        LimiterStats {
            admitted: c.admitted.load(Relaxed)
                + self.all_slots().iter().map(|slot| slot.used()).sum::<u64>(),
            refused: c.refused.load(Relaxed),
            waits: c.waits.load(Relaxed),
            leases: c.leases.load(Relaxed),
            lease_failures: c.lease_failures.load(Relaxed),
            asks_dropped: c.asks_dropped.load(Relaxed),
            unassigned_subjects: c.unassigned_subjects.load(Relaxed),
            policy_version: self.shared.version.load(Relaxed),
        }
    }

    /// The backend the limiter leases from.
    pub fn counter(&self) -> &Arc<dyn Counter> {
        &self.shared.counter
    }

    /// Stops the task and gives back every lease held, so no quota is stranded.
    pub async fn stop(&self) {
        let stopped = self.shared.stopped.notified();
        if !self.shared.stop.swap(true, AcqRel) {
            self.shared.wake.wake();
            // Bounded: the task may have ended already (its runtime shut down).
            let _ = tokio::time::timeout(Duration::from_secs(1), stopped).await;
        }
        for slot in self.all_slots() {
            self.give_back_lease(&slot).await;
        }
    }

    /// The task: leases for the slots that ask, reloads the policy, gives back idle
    /// leases.
    async fn run(self) {
        let settings = self.shared.settings.clone();
        let tick = Duration::from_millis(100);
        let mut last_reload = tokio::time::Instant::now();
        let mut last_idle = tokio::time::Instant::now();
        loop {
            let _ = tokio::time::timeout(
                tick,
                poll_fn(|cx| {
                    self.shared.wake.register(cx.waker());
                    if self.shared.asks.is_empty() && !self.shared.stop.load(Acquire) {
                        Poll::Pending
                    } else {
                        Poll::Ready(())
                    }
                }),
            )
            .await;
            if self.shared.stop.load(Acquire) {
                self.shared.stopped.notify_waiters();
                return;
            }
            while let Some(slot) = self.shared.asks.pop() {
                let limiter = self.clone();
                tokio::spawn(async move { limiter.refill(&slot).await });
            }
            if last_reload.elapsed() >= settings.reload_every {
                last_reload = tokio::time::Instant::now();
                if let Err(error) = self.reload().await {
                    tracing::warn!(%error, "limits: cannot read the policy; the last one read stays in force");
                }
            }
            if last_idle.elapsed() >= Duration::from_secs(1) {
                last_idle = tokio::time::Instant::now();
                self.give_back_idle().await;
            }
        }
    }

    /// Leases more for `slot`, for the window holding now.
    async fn refill(&self, slot: &Arc<Slot>) {
        let result = tokio::time::timeout(BACKEND_TIMEOUT, self.lease_for(slot))
            .await
            .unwrap_or_else(|_| Err(Error::ambiguous("a lease took over 5 s: given up")));
        slot.asked.store(false, Release);
        slot.refilled.notify_waiters();
        if let Err(error) = result {
            self.shared.stats.lease_failures.fetch_add(1, Relaxed);
            tracing::warn!(%error, subject = slot.subject.as_str(), limit = &*slot.name,
                "limits: cannot lease quota; the subject's requests wait, then are refused");
        }
    }

    async fn lease_for(&self, slot: &Arc<Slot>) -> Result<()> {
        if slot.retired.load(Acquire) {
            return Ok(());
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let now = now_ms.div_euclid(1000);
        let window = Window::of(slot.limit.period, &slot.limit.zone, now);
        let (epoch, left) = unpack(slot.state.load(Acquire));
        let same = slot.window(epoch) == window;
        if same && left >= slot.low.load(Relaxed).max(1) {
            return Ok(()); // refilled meanwhile
        }
        let seed = if same {
            0
        } else {
            used_in(
                &*self.shared.counter,
                slot.subject.as_str(),
                &slot.limit,
                window,
            )
            .await
            // Without it a new window's ledger could start below what was used:
            // no lease then (the subject's requests wait, then are refused).
            .map_err(|error| {
                Error::unavailable(format!(
                    "reading what the window used before its first lease: {error}"
                ))
            })?
        };
        let want = self.want(slot, same, left, now_ms);
        let ask = LeaseAsk {
            subject: slot.subject.as_str(),
            limit: &slot.name,
            window,
            amount: slot.amount,
            hard: slot.limit.hard,
            want,
            give_back: 0,
            seed,
        };
        self.shared.stats.leases.fetch_add(1, Relaxed);
        let grant = self.shared.counter.lease(&ask).await?;
        slot.taken.store(grant.taken, Relaxed);
        slot.low.store(grant.granted.div_ceil(2), Relaxed);
        if grant.granted == 0 {
            slot.refused_until.store(now + 1, Relaxed);
        }
        if same {
            let installed = slot.state.fetch_update(AcqRel, Acquire, |state| {
                let (now_epoch, left) = unpack(state);
                (now_epoch == epoch).then(|| pack(epoch, left + grant.granted))
            });
            if installed.is_err() {
                // Another window began meanwhile: the grant is lost to the old one.
                return Ok(());
            }
            slot.leased.fetch_add(grant.granted, Relaxed);
            slot.leased_all.fetch_add(grant.granted, Relaxed);
        } else {
            let next = (epoch + 1) & 0xffff;
            let (start, end) = &slot.windows[(next % 4) as usize];
            start.store(window.start, Release);
            end.store(window.end, Release);
            // What the old window left unused is lost with it: not admitted.
            let (_, unused) = unpack(slot.state.swap(pack(next, grant.granted), AcqRel));
            slot.returned_all.fetch_add(unused, Relaxed);
            slot.leased_all.fetch_add(grant.granted, Relaxed);
            slot.leased.store(grant.granted, Relaxed);
            slot.used_at_lease.store(0, Relaxed);
        }
        slot.lease_at_ms.store(now_ms, Relaxed);
        Ok(())
    }

    /// The next lease's size: the subject's rate since the last lease times
    /// `lease_seconds`, at least 1, at most the amount / `max_lease_share`.
    fn want(&self, slot: &Slot, same: bool, left: u64, now_ms: i64) -> u64 {
        let settings = &self.shared.settings;
        let max = (slot.amount / settings.max_lease_share.max(1)).max(1);
        if !same {
            return max.min(16);
        }
        let used = slot.leased.load(Relaxed).saturating_sub(left);
        let since = used.saturating_sub(slot.used_at_lease.swap(used, Relaxed));
        let elapsed = ((now_ms - slot.lease_at_ms.load(Relaxed)) as f64 / 1000.0).max(0.05);
        let rate = since as f64 / elapsed;
        ((rate * settings.lease_seconds).ceil() as u64).clamp(1, max)
    }

    /// Takes back what is left of `slot`'s lease and gives it to the ledger.
    async fn give_back_lease(&self, slot: &Slot) {
        let state = slot.state.fetch_and(!LEFT_MASK, AcqRel);
        let (epoch, left) = unpack(state);
        if left == 0 {
            return;
        }
        slot.returned_all.fetch_add(left, Relaxed);
        let ask = LeaseAsk {
            subject: slot.subject.as_str(),
            limit: &slot.name,
            window: slot.window(epoch),
            amount: slot.amount,
            hard: slot.limit.hard,
            want: 0,
            give_back: left,
            seed: 0,
        };
        self.shared.stats.leases.fetch_add(1, Relaxed);
        let given = tokio::time::timeout(BACKEND_TIMEOUT, self.shared.counter.lease(&ask)).await;
        match given.unwrap_or_else(|_| Err(Error::ambiguous("giving back took over 5 s"))) {
            Ok(grant) => slot.taken.store(grant.taken, Relaxed),
            Err(error) => {
                self.shared.stats.lease_failures.fetch_add(1, Relaxed);
                tracing::warn!(%error, subject = slot.subject.as_str(), limit = &*slot.name, unused = left,
                    "limits: cannot give back an unused lease; it is lost to the window");
            }
        }
    }

    /// Gives back the leases no request took from since the last check
    /// `idle_after` ago.
    async fn give_back_idle(&self) {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let idle_ms = self.shared.settings.idle_after.as_millis() as i64;
        let idle: Vec<Arc<Slot>> = {
            self.all_slots()
                .into_iter()
                .filter(|slot| {
                    let (_, left) = unpack(slot.state.load(Relaxed));
                    if left == 0 || slot.idle_left.swap(left, Relaxed) != left {
                        slot.idle_since_ms.store(now_ms, Relaxed);
                        return false;
                    }
                    now_ms - slot.idle_since_ms.load(Relaxed) >= idle_ms
                })
                .collect()
        };
        for slot in idle {
            self.give_back_lease(&slot).await;
        }
    }

    /// Reads the policy if it changed, and puts it in force: slots of unchanged
    /// limits keep their leases; the others' leases are given back.
    async fn reload(&self) -> Result<()> {
        let version = self.shared.version.load(Acquire);
        let Some(stored) = self.shared.counter.policy_since(version).await? else {
            return Ok(());
        };
        let retired = self.put_in_force(&stored.policy);
        self.shared.version.store(stored.version, Release);
        for slot in retired {
            slot.retired.store(true, Release);
            self.give_back_lease(&slot).await;
            self.shared.stats.admitted.fetch_add(slot.used(), Relaxed);
        }
        Ok(())
    }

    /// Builds every subject's slots from `policy`; returns the slots dropped.
    fn put_in_force(&self, policy: &Policy) -> Vec<Arc<Slot>> {
        let old = Arc::clone(&self.shared.plans.lock().unwrap_or_else(|e| e.into_inner()));
        let old_plans = &old.plans;
        let mut plans = Plans::default();
        let mut retired = Vec::new();
        let limits: std::collections::BTreeMap<&str, (Arc<str>, Arc<Limit>)> = policy
            .limits
            .iter()
            .map(|(name, limit)| {
                (
                    name.as_str(),
                    (Arc::from(name.as_str()), Arc::new(limit.clone())),
                )
            })
            .collect();
        for (text, assignment) in &policy.subjects {
            let Ok(subject) = Subject::new(text) else {
                self.shared.stats.unassigned_subjects.fetch_add(1, Relaxed);
                tracing::warn!(subject = %text, "limits: cannot intern the subject (its budget is spent): its requests pass unlimited");
                continue;
            };
            let old = old_plans.get(&subject);
            let names = policy
                .plans
                .get(&assignment.plan)
                .map_or(&[][..], Vec::as_slice);
            let slots: Box<[Arc<Slot>]> = names
                .iter()
                .take(MAX_LIMITS_PER_PLAN)
                .filter_map(|name| {
                    let (name, limit) = limits.get(name.as_str())?;
                    let amount = assignment
                        .overrides
                        .get(&**name)
                        .copied()
                        .unwrap_or(limit.amount);
                    let same = old.and_then(|a| {
                        a.slots.iter().find(|s| {
                            s.name == *name && enforces_alike(&s.limit, limit) && s.amount == amount
                        })
                    });
                    Some(same.cloned().unwrap_or_else(|| {
                        Arc::new(Slot::new(
                            subject,
                            Arc::clone(name),
                            Arc::clone(limit),
                            amount,
                        ))
                    }))
                })
                .collect();
            if let Some(old) = old {
                retired.extend(
                    old.slots
                        .iter()
                        .filter(|s| !slots.iter().any(|n| Arc::ptr_eq(n, s)))
                        .cloned(),
                );
            }
            plans.insert(subject, Arc::new(Assigned { slots }));
        }
        for (subject, old) in old_plans.iter() {
            if !plans.contains_key(subject) {
                retired.extend(old.slots.iter().cloned());
            }
        }
        let mut current = self.shared.plans.lock().unwrap_or_else(|e| e.into_inner());
        let generation = current.generation + 1;
        *current = Arc::new(PlansAt { generation, plans });
        // Under the lock: the hint never runs ahead of, nor behind, the plans stored.
        self.shared.generation.store(generation, Release);
        retired
    }
}
