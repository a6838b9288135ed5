//! Limits: the policy (one row of JSON and its version) and the ledger of quota
//! handed out per subject, limit and window. A lease is one immediate transaction,
//! so processes sharing the file take turns on it and never hand out past a hard
//! limit.

use count_core::limits::{LeaseAsk, LeaseGrant, Policy};
use count_core::{Error, Result, StoredPolicy};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{classify, commit_failed};

/// How long a window's ledger is kept after it ends: reports and replicas late by a
/// clock's skew still find it.
const KEEP_ENDED_SECONDS: i64 = 86_400;

/// The policy, unless it is at `version`.
pub(crate) fn policy_since(conn: &Connection, version: u64) -> Result<Option<StoredPolicy>> {
    let doing = "reading the policy of limits";
    let row: Option<(i64, String)> = conn
        .query_row("SELECT version, policy FROM limits_policy", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(|e| classify(doing, e))?;
    let Some((stored, text)) = row else {
        return Ok((version != 0).then(StoredPolicy::default));
    };
    if stored as u64 == version {
        return Ok(None);
    }
    Ok(Some(StoredPolicy {
        version: stored as u64,
        policy: Policy::from_json(&text)?,
    }))
}

/// Replaces the policy if it is still at `expected`.
pub(crate) fn replace_policy(conn: &mut Connection, expected: u64, policy: &Policy) -> Result<u64> {
    policy.check()?;
    let doing = |what: &str| format!("replacing the policy of limits: {what}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(&doing("starting"), e))?;
    let current: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM limits_policy",
            [],
            |r| r.get(0),
        )
        .map_err(|e| classify(&doing("reading its version"), e))?;
    if current as u64 != expected {
        return Err(Error::Conflict(format!(
            "the policy is at version {current}, not {expected}: read it again"
        )));
    }
    tx.execute(
        "INSERT INTO limits_policy (one, version, policy) VALUES (1, ?1, ?2) \
         ON CONFLICT (one) DO UPDATE SET version = excluded.version, policy = excluded.policy",
        (current + 1, policy.to_json()),
    )
    .map_err(|e| classify(&doing("writing"), e))?;
    tx.commit()
        .map_err(|e| commit_failed(&doing("committing"), e))?;
    Ok(current as u64 + 1)
}

/// Applies `ask` to its ledger row.
pub(crate) fn lease(conn: &mut Connection, ask: &LeaseAsk<'_>) -> Result<LeaseGrant> {
    let doing = |what: &str| {
        format!(
            "leasing quota of limit {} for subject {}: {what}",
            ask.limit, ask.subject
        )
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(&doing("starting"), e))?;
    let taken: Option<i64> = tx
        .query_row(
            "SELECT taken FROM limit_ledger WHERE subject = ?1 AND limit_name = ?2 AND window_start = ?3",
            (ask.subject, ask.limit, ask.window.start),
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| classify(&doing("reading the ledger"), e))?;
    let grant = ask.apply(taken.map(|t| t as u64));
    if taken.is_none() {
        // By this machine's clock, never the ask's window: a window far ahead must
        // not make every other ledger look ended.
        let now = count_core::jiff::Timestamp::now().as_second();
        tx.execute(
            "DELETE FROM limit_ledger WHERE window_end < ?1",
            [now.saturating_sub(KEEP_ENDED_SECONDS)],
        )
        .map_err(|e| classify(&doing("forgetting ended windows"), e))?;
    }
    // A window that starts where another did (a day's and a week's, after a change
    // of period) keeps the later end: the row is not forgotten mid-window.
    tx.execute(
        "INSERT INTO limit_ledger (subject, limit_name, window_start, window_end, taken) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (subject, limit_name, window_start) DO UPDATE SET taken = excluded.taken, \
         window_end = max(window_end, excluded.window_end)",
        (
            ask.subject,
            ask.limit,
            ask.window.start,
            ask.window.end,
            grant.taken.min(i64::MAX as u64) as i64,
        ),
    )
    .map_err(|e| classify(&doing("writing the ledger"), e))?;
    tx.commit()
        .map_err(|e| commit_failed(&doing("committing"), e))?;
    Ok(grant)
}
