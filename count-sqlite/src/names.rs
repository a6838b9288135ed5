//! The reads' cache of the `keys` table: what key an id stands for. Keys are never
//! changed or deleted, so a cached name stays right; the database is asked once per
//! key (until the cache is full and starts again).

use std::collections::HashMap;
use std::sync::Mutex;

use count_core::{CountKey, Error, Method, Path, Result, Status, Subject};
use rusqlite::{Connection, OptionalExtension};

use crate::error::classify;

const KEY_BY_ID: &str = "SELECT method, path, subject, status FROM keys WHERE id = ?1";

/// Key ids and their keys, shared by every read of one counter.
#[derive(Debug, Default)]
pub(crate) struct KeyNames {
    known: Mutex<HashMap<i64, CountKey>>,
}

impl KeyNames {
    /// Past this many cached keys the cache starts again.
    const MAX_CACHED: usize = count_core::backend::MAX_CACHED_KEYS;

    /// `counts` by key: each `(day, key id)` with its key.
    ///
    /// # Errors
    ///
    /// The database's; [`Error::InvalidInput`] for an id or a stored key that is
    /// not valid (the file was changed outside count).
    pub(crate) fn name<T>(
        &self,
        conn: &Connection,
        counts: impl IntoIterator<Item = ((i64, i64), T)>,
    ) -> Result<Vec<(i64, CountKey, T)>> {
        let counts: Vec<((i64, i64), T)> = counts.into_iter().collect();
        let mut missing: Vec<i64> = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            counts
                .iter()
                .map(|&((_, id), _)| id)
                .filter(|id| !known.contains_key(id))
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        let mut found = Vec::with_capacity(missing.len());
        if !missing.is_empty() {
            let mut select = conn
                .prepare_cached(KEY_BY_ID)
                .map_err(|e| classify("reading keys", e))?;
            for id in missing {
                let row: Option<(i32, String, String, i64)> = select
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .optional()
                    .map_err(|e| classify("reading keys", e))?;
                let (method, path, subject, status) = row.ok_or_else(|| {
                    Error::invalid(
                        "key id",
                        id,
                        "has no key: the database was changed outside count",
                    )
                })?;
                found.push((id, key_of(method, &path, &subject, status)?));
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() + found.len() > Self::MAX_CACHED {
            known.clear();
        }
        known.extend(found);
        counts
            .into_iter()
            .map(|((day, id), value)| {
                let key = *known.get(&id).ok_or_else(|| {
                    Error::invalid("key id", id, "was not found in the keys just read")
                })?;
                Ok((day, key, value))
            })
            .collect()
    }
}

/// A stored key: the method's wire number, `''` for no subject, `-1` for no status.
fn key_of(method: i32, path: &str, subject: &str, status: i64) -> Result<CountKey> {
    let subject = match subject {
        "" => None,
        text => Some(Subject::from_storage(text)?),
    };
    let status = match status {
        -1 => None,
        code => Some(Status::from_code(code)?),
    };
    Ok(CountKey::of(
        Method::from_number(method)?,
        Path::from_storage(path)?,
        subject,
        status,
    ))
}
