//! The key-id cache: the database is asked for a key's id once per process, when a
//! batch first carries the key; every later batch finds it here.

use std::collections::HashMap;
use std::sync::Mutex;

use count_core::{CountKey, Endpoint, Error, Method, Path, Result, Status, Subject};

use crate::error::classify;
use crate::sql::{NO_STATUS, NO_SUBJECT, Sql};

/// Ids of keys already resolved, at most
/// [`MAX_CACHED_KEYS`](count_core::backend::MAX_CACHED_KEYS): past it the cache starts
/// again, as count-sqlite's does.
#[derive(Debug, Default)]
pub(crate) struct KeyIds {
    known: Mutex<HashMap<CountKey, i64>>,
}

impl KeyIds {
    /// The id of each of `keys` (in order), inserting the keys the database does not
    /// hold yet.
    pub(crate) async fn ids(
        &self,
        client: &tokio_postgres::Client,
        sql: &Sql,
        keys: &[CountKey],
    ) -> Result<Vec<i64>> {
        // Read once: the cache may start again while the missing ones are fetched.
        let cached: Vec<Option<i64>> = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            keys.iter().map(|key| known.get(key).copied()).collect()
        };
        let mut missing: Vec<CountKey> = (keys.iter().zip(&cached))
            .filter(|(_, id)| id.is_none())
            .map(|(key, _)| *key)
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let fetched = if missing.is_empty() {
            HashMap::new()
        } else {
            self.fetch(client, sql, &missing).await?
        };
        keys.iter()
            .zip(cached)
            .map(|(key, cached)| {
                cached.or_else(|| fetched.get(key).copied()).ok_or_else(|| {
                    Error::unavailable(format!("key {key} has no id after it was inserted"))
                })
            })
            .collect()
    }

    async fn fetch(
        &self,
        client: &tokio_postgres::Client,
        sql: &Sql,
        missing: &[CountKey],
    ) -> Result<HashMap<CountKey, i64>> {
        let methods: Vec<&str> = missing.iter().map(|k| k.endpoint.method.as_str()).collect();
        let paths: Vec<&str> = missing.iter().map(|k| k.endpoint.path.as_str()).collect();
        let subjects: Vec<&str> = missing
            .iter()
            .map(|k| k.subject.map_or(NO_SUBJECT, Subject::as_str))
            .collect();
        let statuses: Vec<i64> = missing.iter().map(|k| status_column(k.status)).collect();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&methods, &paths, &subjects, &statuses];
        client
            .execute(&sql.insert_keys, &params)
            .await
            .map_err(|e| classify("adding keys", e))?;
        let rows = client
            .query(&sql.select_keys, &params)
            .await
            .map_err(|e| classify("reading key ids", e))?;
        let mut fetched = HashMap::with_capacity(rows.len());
        for row in rows {
            let key = key_of(row.get(1), row.get(2), row.get(3), row.get(4))?;
            fetched.insert(key, row.get(0));
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() + fetched.len() > count_core::backend::MAX_CACHED_KEYS {
            known.clear();
        }
        known.extend(fetched.iter().map(|(key, id)| (*key, *id)));
        Ok(fetched)
    }
}

/// The stored status: the code, or `-1` for none.
pub(crate) fn status_column(status: Option<Status>) -> i64 {
    status.map_or(NO_STATUS, |s| i64::from(s.code()))
}

/// The endpoint of stored text: interned even when the interner is full, so reports
/// keep working.
pub(crate) fn endpoint_of(method: &str, path: &str) -> Result<Endpoint> {
    Ok(Endpoint::new(
        method.parse::<Method>()?,
        Path::from_storage(path)?,
    ))
}

/// The subject of a stored subject column (`''`: none).
pub(crate) fn subject_of(subject: &str) -> Result<Option<Subject>> {
    if subject == NO_SUBJECT {
        return Ok(None);
    }
    Subject::from_storage(subject).map(Some)
}

/// The status of a stored status column (`-1`: none).
pub(crate) fn status_of(status: i64) -> Result<Option<Status>> {
    if status == NO_STATUS {
        return Ok(None);
    }
    Status::from_code(status).map(Some)
}

fn key_of(method: &str, path: &str, subject: &str, status: i64) -> Result<CountKey> {
    let endpoint = endpoint_of(method, path)?;
    Ok(CountKey::of(
        endpoint.method,
        endpoint.path,
        subject_of(subject)?,
        status_of(status)?,
    ))
}
