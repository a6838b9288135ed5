//! One bounded step of a rollup, and the pruning of old batch ids.
//!
//! A step takes the first `limit` raw rows of a day (in primary-key order: bucket,
//! then key), adds each key's sum to the day's totals, and deletes exactly those
//! rows, in one write transaction. SQLite has one writer at a time, so a step sees
//! no concurrent write and no other rollup: each raw row is added exactly once, and
//! counts written between steps are taken by a later step or the next rollup.

use std::collections::HashMap;

use count_core::{Day, Error, Result};
use rusqlite::{Connection, TransactionBehavior};

use crate::error::{classify, commit_failed};
use crate::sum::{self, saturating_add};

const CHUNK: &str =
    "SELECT bucket, key_id, n FROM raw_counts WHERE day = ?1 ORDER BY bucket, key_id LIMIT ?2";
const ADD_TOTAL: &str = concat!(
    "INSERT INTO daily_totals (day, key_id, total) VALUES (?1, ?2, ?3) ",
    "ON CONFLICT (day, key_id) DO UPDATE SET total = ",
    saturating_add!("total")
);
/// The rows read: the day's first rows up to the last one read, a range of the
/// primary key.
const DELETE_CHUNK: &str = "DELETE FROM raw_counts WHERE day = ?1 AND (bucket, key_id) <= (?2, ?3)";
const PRUNE_BATCHES: &str = "DELETE FROM batches WHERE applied_at < ?1";

/// Moves up to `limit` raw rows of `day` into its daily totals; returns how many
/// it moved (fewer than `limit`: the day had no more).
///
/// # Errors
///
/// The database's; nothing of the step is kept then.
pub(crate) fn step(conn: &mut Connection, day: Day, limit: usize) -> Result<usize> {
    let doing = |what: &str| format!("rolling up {day}: {what}");
    let d = day.unix_day();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(&doing("starting a step"), e))?;
    let mut sums: HashMap<i64, i64> = HashMap::new();
    let mut last = None;
    let mut moved = 0;
    {
        let mut chunk = tx
            .prepare_cached(CHUNK)
            .map_err(|e| classify(&doing("preparing"), e))?;
        let rows = chunk
            .query_map((d, limit as i64), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| classify(&doing("reading raw counts"), e))?;
        for row in rows {
            let (bucket, key_id, n): (i64, i64, i64) =
                row.map_err(|e| classify(&doing("reading raw counts"), e))?;
            let total = sums.entry(key_id).or_default();
            *total = sum::add(*total, n);
            last = Some((bucket, key_id));
            moved += 1;
        }
    }
    let Some((last_bucket, last_key)) = last else {
        return Ok(0);
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
    let deleted = tx
        .prepare_cached(DELETE_CHUNK)
        .and_then(|mut s| s.execute((d, last_bucket, last_key)))
        .map_err(|e| classify(&doing("deleting the rows added"), e))?;
    if deleted != moved {
        // Cannot happen inside a write transaction; refuse rather than miscount.
        return Err(Error::unavailable(doing(&format!(
            "read {moved} raw rows but the same range held {deleted}; nothing was changed"
        ))));
    }
    tx.commit()
        .map_err(|e| commit_failed(&doing("committing a step"), e))?;
    Ok(moved)
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
