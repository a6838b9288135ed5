//! [`Usage`]: where each subject stands against each limit of its plan, now, as the
//! reports say: what the dashboard, the API and `/metrics` show.

use std::collections::BTreeMap;

use super::policy::{LimitPeriod, Policy};
use super::window::{Window, used_by_subject};
use crate::{Counter, Result};
use crate::{CounterExt, Error, StoredPolicy};

/// One subject against one limit of its plan, in the window holding now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// The subject.
    pub subject: String,
    /// The limit's name.
    pub limit: String,
    /// Its period.
    pub period: LimitPeriod,
    /// The window holding now.
    pub window: Window,
    /// Requests the limit counted in the window.
    pub used: u64,
    /// The subject's amount.
    pub amount: u64,
    /// Hard or soft.
    pub hard: bool,
}

impl Usage {
    /// `used / amount` (1.0 is at the limit; an amount of 0 is always at it).
    pub fn share(&self) -> f64 {
        if self.amount == 0 {
            1.0
        } else {
            self.used as f64 / self.amount as f64
        }
    }
}

/// Every subject of `policy` (or only `subject`) against every limit of its plan, at
/// the Unix second `now`, nearest their limits first: one report per limit.
///
/// # Errors
///
/// As [`Counter::totals`].
pub async fn usage(
    counter: &dyn Counter,
    policy: &Policy,
    now: i64,
    subject: Option<&str>,
) -> Result<Vec<Usage>> {
    let mut out = Vec::new();
    for (name, limit) in &policy.limits {
        let subjects: Vec<(&String, u64)> = policy
            .subjects
            .iter()
            .filter(|(s, _)| subject.is_none_or(|only| only == s.as_str()))
            .filter_map(|(s, _)| Some((s, policy.amount_for(s, name)?)))
            .collect();
        if subjects.is_empty() {
            continue;
        }
        let window = Window::of(limit.period, &limit.zone, now);
        let used: BTreeMap<String, u64> = used_by_subject(counter, subject, limit, window).await?;
        out.extend(subjects.into_iter().map(|(s, amount)| Usage {
            subject: s.clone(),
            limit: name.clone(),
            period: limit.period,
            window,
            used: used.get(s).copied().unwrap_or(0),
            amount,
            hard: limit.hard,
        }));
    }
    out.sort_by(|a, b| {
        b.share()
            .total_cmp(&a.share())
            .then_with(|| (&a.subject, &a.limit).cmp(&(&b.subject, &b.limit)))
    });
    Ok(out)
}

/// How many times [`change_policy`] reads again when another change came first.
const CHANGE_ATTEMPTS: usize = 8;

/// Reads the policy, changes it with `change`, checks it and replaces it from the
/// version read: again when another change came first. Returns what was stored.
///
/// # Errors
///
/// What `change` returns; [`Error::InvalidInput`] when the changed policy breaks a
/// rule ([`Policy::check`]); [`Error::Conflict`] when other changes kept coming
/// first; when the backend fails.
pub async fn change_policy(
    counter: &dyn Counter,
    change: impl Fn(&mut Policy) -> Result<()>,
) -> Result<StoredPolicy> {
    for _ in 0..CHANGE_ATTEMPTS {
        let mut stored = counter.policy().await?;
        change(&mut stored.policy)?;
        stored.policy.check()?;
        match counter.replace_policy(stored.version, &stored.policy).await {
            Ok(version) => {
                return Ok(StoredPolicy {
                    version,
                    policy: stored.policy,
                });
            }
            Err(Error::Conflict(_)) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(Error::Conflict(format!(
        "the policy changed {CHANGE_ATTEMPTS} times while this change was made: try again"
    )))
}
