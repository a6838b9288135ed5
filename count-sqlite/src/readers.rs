//! The read connections: a few read-only connections, each used by one report at a
//! time on tokio's blocking threads. In WAL mode they read a committed snapshot
//! beside the writer, so reports neither wait for writes nor delay them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use count_core::{Error, Result};
use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::open;

/// A bounded pool of read connections to one file, opened as they are first needed.
#[derive(Debug, Clone)]
pub(crate) struct Readers {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    busy_timeout: Duration,
    /// Whether the counter was opened read-only (see [`open::read_only`]).
    read_only: bool,
    /// One permit per connection: at most this many reads at once.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        connections: usize,
        read_only: bool,
    ) -> Readers {
        Readers {
            shared: Arc::new(Shared {
                path,
                busy_timeout,
                read_only,
                permits: Arc::new(Semaphore::new(connections)),
                idle: Mutex::new(Vec::with_capacity(connections)),
            }),
        }
    }

    /// Runs `read` on a read connection, off the async runtime.
    ///
    /// # Errors
    ///
    /// `read`'s; [`Error::Unavailable`] when a connection cannot be opened or the read
    /// panicked.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = Arc::clone(&self.shared.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::unavailable("the read connections are closed"))?;
        let shared = Arc::clone(&self.shared);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = shared.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let (conn, reusable) = match idle {
                Some(conn) => (conn, true),
                None if shared.read_only => open::read_only(&shared.path, shared.busy_timeout)?,
                None => (open::reader(&shared.path, shared.busy_timeout)?, true),
            };
            let result = read(&conn);
            // A connection is kept for reuse only after a read that returned: a panic
            // drops it with whatever statement it was in.
            if reusable {
                shared
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(conn);
            }
            result
        });
        task.await
            .map_err(|e| Error::unavailable(format!("a read of the SQLite database failed: {e}")))?
    }
}
