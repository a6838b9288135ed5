//! Limits: the policy (one row of JSON and its version) and the ledger of quota
//! handed out per subject, limit and window (count-pg's and count-cockroach's
//! version 4). A lease locks its ledger row (`FOR UPDATE`), so replicas take turns
//! on it and never hand out past a hard limit.

use count_core::limits::{LeaseAsk, LeaseGrant, Policy};
use count_core::{Error, Result, StoredPolicy};

use crate::error::{ambiguous, classify};

/// How long a window's ledger is kept after it ends.
const KEEP_ENDED_SECONDS: i64 = 86_400;

/// The policy, unless it is at `version`.
pub(crate) async fn policy_since(
    client: &deadpool_postgres::Object,
    schema: &str,
    version: u64,
) -> Result<Option<StoredPolicy>> {
    let doing = "reading the policy of limits";
    let row = client
        .query_opt(
            &format!(
                "SELECT version, CASE WHEN version <> $1::bigint THEN policy END \
                 FROM {schema}.limits_policy"
            ),
            &[&(version.min(i64::MAX as u64) as i64)],
        )
        .await
        .map_err(|e| classify(doing, e))?;
    let Some(row) = row else {
        return Ok((version != 0).then(StoredPolicy::default));
    };
    let Some(text): Option<String> = row.get(1) else {
        return Ok(None);
    };
    let stored: i64 = row.get(0);
    Ok(Some(StoredPolicy {
        version: stored as u64,
        policy: Policy::from_json(&text)?,
    }))
}

/// Replaces the policy if it is still at `expected`: one statement, atomic.
pub(crate) async fn replace_policy(
    client: &deadpool_postgres::Object,
    schema: &str,
    expected: u64,
    policy: &Policy,
) -> Result<u64> {
    policy.check()?;
    let doing = "replacing the policy of limits";
    let expected_db = expected.min(i64::MAX as u64) as i64;
    let text = policy.to_json();
    let replaced = if expected == 0 {
        client
            .query_opt(
                &format!(
                    "INSERT INTO {schema}.limits_policy (one, version, policy) VALUES (1, 1, $1) \
                     ON CONFLICT (one) DO NOTHING RETURNING version"
                ),
                &[&text],
            )
            .await
    } else {
        client
            .query_opt(
                &format!(
                    "UPDATE {schema}.limits_policy SET version = version + 1, policy = $2 \
                     WHERE one = 1 AND version = $1::bigint RETURNING version"
                ),
                &[&expected_db, &text],
            )
            .await
    }
    .map_err(|e| classify(doing, e))?;
    if let Some(row) = replaced {
        return Ok(row.get::<_, i64>(0) as u64);
    }
    let current: i64 = client
        .query_opt(&format!("SELECT version FROM {schema}.limits_policy"), &[])
        .await
        .map_err(|e| classify(doing, e))?
        .map_or(0, |row| row.get(0));
    Err(Error::Conflict(format!(
        "the policy is at version {current}, not {expected}: read it again"
    )))
}

/// Applies `ask` to its ledger row, locked for the transaction.
pub(crate) async fn lease(
    client: &mut deadpool_postgres::Object,
    schema: &str,
    ask: &LeaseAsk<'_>,
) -> Result<LeaseGrant> {
    let doing = || {
        format!(
            "leasing quota of limit {} for subject {}",
            ask.limit, ask.subject
        )
    };
    let db = |n: u64| n.min(i64::MAX as u64) as i64;
    let tx = client
        .transaction()
        .await
        .map_err(|e| classify(&doing(), e))?;
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {schema}.limit_ledger \
                 (subject, limit_name, window_start, window_end, taken) \
                 VALUES ($1, $2, $3::bigint, $4::bigint, $5::bigint) \
                 ON CONFLICT (subject, limit_name, window_start) DO NOTHING"
            ),
            &[
                &ask.subject,
                &ask.limit,
                &ask.window.start,
                &ask.window.end,
                &db(ask.seed),
            ],
        )
        .await
        .map_err(|e| classify(&doing(), e))?;
    let taken: i64 = tx
        .query_one(
            &format!(
                "SELECT taken FROM {schema}.limit_ledger \
                 WHERE subject = $1 AND limit_name = $2 AND window_start = $3::bigint FOR UPDATE"
            ),
            &[&ask.subject, &ask.limit, &ask.window.start],
        )
        .await
        .map_err(|e| classify(&doing(), e))?
        .get(0);
    let grant = ask.apply(Some(taken.max(0) as u64));
    // A window that starts where another did (a day's and a week's, after a change
    // of period) keeps the later end: the row is not forgotten mid-window.
    tx.execute(
        &format!(
            "UPDATE {schema}.limit_ledger SET taken = $4::bigint, \
             window_end = GREATEST(window_end, $5::bigint) \
             WHERE subject = $1 AND limit_name = $2 AND window_start = $3::bigint"
        ),
        &[
            &ask.subject,
            &ask.limit,
            &ask.window.start,
            &db(grant.taken),
            &ask.window.end,
        ],
    )
    .await
    .map_err(|e| classify(&doing(), e))?;
    // Lost on the way, the grant may have been taken: it is lost to the window (never
    // handed out twice); a give-back lost so is not retried (see count-cockroach).
    tx.commit().await.map_err(|e| ambiguous(&doing(), e))?;
    if inserted == 1 {
        // A new window: forget the ended ones, by this machine's clock (never the
        // ask's window), in a statement of its own so the lease holds no lock for it.
        let now = count_core::jiff::Timestamp::now().as_second();
        let forgot = client
            .execute(
                &format!("DELETE FROM {schema}.limit_ledger WHERE window_end < $1::bigint"),
                &[&now.saturating_sub(KEEP_ENDED_SECONDS)],
            )
            .await;
        if let Err(error) = forgot {
            tracing::warn!(%error, "count-pg: cannot forget ended limit windows; next time");
        }
    }
    Ok(grant)
}
