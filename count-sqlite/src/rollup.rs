//! One bounded step of a rollup, and the pruning of old batch ids.
//!
//! A step takes a day's first buckets, up to about `limit` counts (at least one
//! bucket), adds each key's sum to the day's totals (and to its quarter hours and the
//! days of the zones kept: `zones.rs`), and deletes those buckets, in one write
//! transaction. SQLite has one writer at a time, so a step sees no
//! concurrent write and no other rollup: each count is added exactly once, and
//! counts written between steps are taken by a later step or the next rollup.

use std::collections::HashMap;

use count_core::{Day, Error, Result};
use rusqlite::{Connection, TransactionBehavior};

use crate::error::{classify, commit_failed};
use crate::open::OpenedFiles;
use crate::packed;
use crate::sum::saturating_add;
use crate::zones::Fold;

const BUCKETS: &str = "SELECT bucket, counts FROM raw_buckets WHERE day = ?1 ORDER BY bucket";
const ADD_TOTAL: &str = concat!(
    "INSERT INTO daily_totals (day, key_id, total) VALUES (?1, ?2, ?3) ",
    "ON CONFLICT (day, key_id) DO UPDATE SET total = ",
    saturating_add!("total")
);
/// The buckets read: the day's first buckets up to the last one read.
const DELETE_BUCKETS: &str = "DELETE FROM raw_buckets WHERE day = ?1 AND bucket <= ?2";
const PRUNE_BATCHES: &str = "DELETE FROM batches WHERE applied_at < ?1";

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Counts moved into the daily totals.
    pub(crate) counts: usize,
    /// Whether the day had buckets left after this step's.
    pub(crate) more: bool,
}

/// Moves `day`'s first buckets, about `limit` counts of them, into its daily totals.
///
/// # Errors
///
/// The database's, or `files`' when they were deleted or replaced since the open;
/// nothing of the step is kept then.
pub(crate) fn step(
    conn: &mut Connection,
    files: Option<&OpenedFiles>,
    day: Day,
    limit: usize,
) -> Result<Step> {
    let doing = |what: &str| format!("rolling up {day}: {what}");
    let d = day.unix_day();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(&doing("starting a step"), e))?;
    let mut sums: HashMap<i64, i64> = HashMap::new();
    let mut fold = Fold::new(&tx, day)?;
    let mut pairs = Vec::new();
    let (mut counts, mut buckets, mut last, mut more) = (0, 0, None, false);
    {
        let mut select = tx
            .prepare_cached(BUCKETS)
            .map_err(|e| classify(&doing("preparing"), e))?;
        let mut rows = select
            .query([d])
            .map_err(|e| classify(&doing("reading raw buckets"), e))?;
        while let Some(row) = rows
            .next()
            .map_err(|e| classify(&doing("reading raw buckets"), e))?
        {
            if counts >= limit {
                more = true;
                break;
            }
            let bucket: i64 = row
                .get(0)
                .map_err(|e| classify(&doing("reading raw buckets"), e))?;
            let value = row
                .get_ref(1)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(|e| classify(&doing("reading raw buckets"), e))?;
            pairs.clear();
            pairs.extend(packed::pairs(value)?);
            for &(key_id, n) in &pairs {
                let total = sums.entry(key_id).or_default();
                *total = total.saturating_add(n);
                counts += 1;
            }
            fold.add(bucket, &pairs);
            last = Some(bucket);
            buckets += 1;
        }
    }
    let Some(last) = last else {
        return Ok(Step {
            counts: 0,
            more: false,
        });
    };
    let mut sums: Vec<(i64, i64)> = sums.into_iter().collect();
    // In key order: the day's totals are updated front to back.
    sums.sort_unstable();
    {
        let mut add = tx
            .prepare_cached(ADD_TOTAL)
            .map_err(|e| classify(&doing("preparing"), e))?;
        for (key_id, total) in sums {
            add.execute((d, key_id, total))
                .map_err(|e| classify(&doing("adding to the daily totals"), e))?;
        }
    }
    fold.write(&tx, &doing)?;
    let deleted = tx
        .prepare_cached(DELETE_BUCKETS)
        .and_then(|mut s| s.execute((d, last)))
        .map_err(|e| classify(&doing("deleting the buckets added"), e))?;
    if deleted != buckets {
        // Cannot happen inside a write transaction; refuse rather than miscount.
        return Err(Error::unavailable(doing(&format!(
            "read {buckets} raw buckets but the same range held {deleted}; nothing was changed"
        ))));
    }
    files.map_or(Ok(()), OpenedFiles::check)?;
    tx.commit()
        .map_err(|e| commit_failed(&doing("committing a step"), e))?;
    Ok(Step { counts, more })
}

/// Forgets the batch ids applied before `before` (a Unix second); returns how many.
///
/// # Errors
///
/// The database's.
pub(crate) fn prune_batches(conn: &Connection, before: i64) -> Result<usize> {
    conn.prepare_cached(PRUNE_BATCHES)
        .and_then(|mut s| s.execute([before]))
        .map_err(|e| classify("pruning old batch ids", e))
}
