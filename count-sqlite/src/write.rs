//! Applying a batch: claim its id with its digest, then merge its counts into their
//! buckets, all inside the caller's write transaction, so the batch lands whole and
//! once, or not at all.

use std::collections::HashMap;

use count_core::{Batch, CountKey, Error, Result};
use rusqlite::{Connection, OptionalExtension};

use crate::error::classify;
use crate::packed;

const FIND_BATCH: &str = "SELECT digest FROM batches WHERE writer = ?1 AND seq = ?2";
const CLAIM_BATCH: &str =
    "INSERT INTO batches (writer, seq, digest, applied_at) VALUES (?1, ?2, ?3, ?4)";
const FIND_BUCKET: &str = "SELECT counts FROM raw_buckets WHERE day = ?1 AND bucket = ?2";
const PUT_BUCKET: &str = "INSERT INTO raw_buckets (day, bucket, counts) VALUES (?1, ?2, ?3) \
     ON CONFLICT (day, bucket) DO UPDATE SET counts = excluded.counts";
const FIND_KEY: &str =
    "SELECT id FROM keys WHERE method = ?1 AND path = ?2 AND subject = ?3 AND status = ?4";
const ADD_KEY: &str =
    "INSERT INTO keys (method, path, subject, status) VALUES (?1, ?2, ?3, ?4) RETURNING id";

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The counts were added.
    Now,
    /// The id was applied before with the same counts: nothing to do.
    Before,
}

/// Applies `batch` inside the open write transaction `tx`.
///
/// # Errors
///
/// [`Error::BatchConflict`], having written nothing, when the id was applied with
/// other counts; the database's error otherwise (the caller rolls back).
pub(crate) fn apply(
    tx: &Connection,
    keys: &mut KeyIds,
    batch: &Batch,
    applied_at: i64,
) -> Result<Applied> {
    let id = batch.id();
    let doing = |what: &str| format!("{what} of batch {id}");
    // Batch::new checked that seq fits an i64.
    let (writer, seq) = (id.writer.as_bytes().as_slice(), id.seq as i64);
    let digest = batch.digest().0;
    let applied: Option<Vec<u8>> = tx
        .prepare_cached(FIND_BATCH)
        .and_then(|mut s| s.query_row((writer, seq), |row| row.get(0)).optional())
        .map_err(|e| classify(&doing("looking up the id"), e))?;
    if let Some(stored) = applied {
        return if stored == digest {
            Ok(Applied::Before)
        } else {
            Err(Error::BatchConflict { id })
        };
    }
    tx.prepare_cached(CLAIM_BATCH)
        .and_then(|mut s| s.execute((writer, seq, digest.as_slice(), applied_at)))
        .map_err(|e| classify(&doing("claiming the id"), e))?;
    // (day, bucket, key id, n), in bucket and key order.
    let mut rows = Vec::with_capacity(batch.counts().len());
    for count in batch.counts() {
        let key_id = keys.id(tx, count.key)?;
        // Batch::new bounds n by 2^40.
        rows.push((
            count.day().unix_day(),
            count.bucket.as_second(),
            key_id,
            count.n as i64,
        ));
    }
    rows.sort_unstable();
    let mut find = tx
        .prepare_cached(FIND_BUCKET)
        .map_err(|e| classify(&doing("preparing"), e))?;
    let mut put = tx
        .prepare_cached(PUT_BUCKET)
        .map_err(|e| classify(&doing("preparing"), e))?;
    let mut adds: Vec<(i64, i64)> = Vec::new();
    for bucket_rows in rows.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let (day, bucket) = (bucket_rows[0].0, bucket_rows[0].1);
        adds.clear();
        for &(_, _, key_id, n) in bucket_rows {
            match adds.last_mut() {
                // The same key twice in a batch (a client may send that): one sum.
                Some((last, sum)) if *last == key_id => *sum = sum.saturating_add(n),
                _ => adds.push((key_id, n)),
            }
        }
        let stored: Option<Vec<u8>> = find
            .query_row((day, bucket), |row| row.get(0))
            .optional()
            .map_err(|e| classify(&doing("reading a bucket"), e))?;
        let merged = packed::merge(stored.as_deref().unwrap_or_default(), &adds)?;
        put.execute((day, bucket, merged))
            .map_err(|e| classify(&doing("writing a bucket"), e))?;
    }
    Ok(Applied::Now)
}

/// The writer's cache of key ids: the database is asked once per distinct key.
///
/// Ids of keys inserted by the open transaction are kept apart until it commits: a
/// rolled-back insert must not leave an id behind that no row has.
#[derive(Debug, Default)]
pub(crate) struct KeyIds {
    committed: HashMap<CountKey, i64>,
    pending: HashMap<CountKey, i64>,
}

impl KeyIds {
    /// Past this many cached keys the cache starts again (the ids stay in the
    /// database).
    const MAX_CACHED: usize = count_core::backend::MAX_CACHED_KEYS;

    /// The id of `key`, inserted by `tx` when new.
    fn id(&mut self, tx: &Connection, key: CountKey) -> Result<i64> {
        if let Some(&id) = self.committed.get(&key).or_else(|| self.pending.get(&key)) {
            return Ok(id);
        }
        let method = key.endpoint.method.number();
        let path = key.endpoint.path.as_str();
        let subject = key.subject.map_or("", |s| s.as_str());
        let status = key.status.map_or(-1, |s| i32::from(s.code()));
        let row = (method, path, subject, status);
        let doing = || format!("finding the id of {key}");
        let found: Option<i64> = tx
            .prepare_cached(FIND_KEY)
            .and_then(|mut s| s.query_row(row, |r| r.get(0)).optional())
            .map_err(|e| classify(&doing(), e))?;
        if let Some(id) = found {
            // Committed before this transaction: safe to keep whatever happens.
            self.committed.insert(key, id);
            return Ok(id);
        }
        let id = tx
            .prepare_cached(ADD_KEY)
            .and_then(|mut s| s.query_row(row, |r| r.get(0)))
            .map_err(|e| classify(&doing(), e))?;
        self.pending.insert(key, id);
        Ok(id)
    }

    /// The open transaction committed: its new ids are for good.
    pub(crate) fn committed(&mut self) {
        if self.committed.len() + self.pending.len() > Self::MAX_CACHED {
            self.committed.clear();
        }
        self.committed.extend(self.pending.drain());
    }

    /// The open transaction rolled back: forget the ids it made.
    pub(crate) fn rolled_back(&mut self) {
        self.pending.clear();
    }
}
