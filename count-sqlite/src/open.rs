//! Opening connections: the file and its directories created, the settings applied,
//! and every way an open can fail said in terms of the file's path.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use count_core::{Error, Result};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::Durability;
use crate::error::classify;

/// What every connection of one counter is opened with.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSettings {
    pub(crate) durability: Durability,
    pub(crate) busy_timeout: Duration,
}

/// The writer's connection to `path` (created with its directories if missing and
/// `create`), in WAL mode with the settings' durability.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the path and what is wrong: a directory, a place
/// where the file or its directory cannot be created, a read-only file, a file that
/// is not a SQLite database; [`Error::NotFound`] for a missing file when not
/// `create`. Other failures as SQLite reports them.
pub(crate) fn writer(
    path: &Path,
    settings: &ConnectionSettings,
    create: bool,
) -> Result<Connection> {
    let shown = shown(path);
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        prepare(path)?;
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    } else if !path.is_file() {
        return Err(Error::NotFound(format!(
            "no SQLite database at {shown} (open it with migrations on to create it)"
        )));
    }
    let failed = |e| open_failed(&shown, e, "writing");
    let conn = Connection::open_with_flags(path, flags).map_err(failed)?;
    // SQLite falls back to read-only, silently, on a file it may not write.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(failed)? {
        return Err(Error::invalid(
            "database",
            &shown,
            "is read-only for this process: count writes to it (make it writable, or name another file)",
        ));
    }
    conn.busy_timeout(settings.busy_timeout).map_err(failed)?;
    // The first statement to read the file: where a file that is not SQLite shows.
    // Switching to WAL may answer busy at once, without the busy handler (another
    // process opening or recovering the file at the same moment): retried as long as
    // the busy timeout allows.
    let mode: String = retry_busy(settings.busy_timeout, || {
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
    })
    .map_err(failed)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::invalid(
            "database",
            &shown,
            format!("cannot use write-ahead logging (the journal mode stayed {mode:?})"),
        ));
    }
    conn.pragma_update(None, "synchronous", settings.durability.synchronous())
        .map_err(failed)?;
    // A checkpoint truncates the log back to this size, so one large transaction
    // does not leave a large file behind.
    conn.pragma_update(None, "journal_size_limit", 64 << 20)
        .map_err(failed)?;
    Ok(conn)
}

/// The writer's connection to a private in-memory database.
///
/// # Errors
///
/// When SQLite cannot open one (out of memory).
pub(crate) fn memory() -> Result<Connection> {
    Connection::open_in_memory().map_err(|e| classify("opening an in-memory database", e))
}

/// A read-only connection to `path` (which the writer has opened, so it exists and
/// is in WAL mode): it reads beside the writer without waiting for it.
///
/// # Errors
///
/// As SQLite reports them.
pub(crate) fn reader(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let doing = || format!("opening a read connection to {}", path.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(&doing(), e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| classify(&doing(), e))?;
    Ok(conn)
}

/// A connection that only reads the database at `path` and changes nothing, for a
/// counter opened read-only: it needs no write access to the file or its directory,
/// and creates nothing beside the file. `true` with it when it may be kept for later
/// reads.
///
/// A WAL database is read through its `-wal` and `-shm`, which SQLite would create
/// when missing (they are gone after a clean stop), and cannot when the directory is
/// not writable. Without a `-wal` no process is writing the file (a writer keeps its
/// log open), so the file alone is the whole database: it is read as it is
/// (`immutable`), for one read only, since a writer may start later.
///
/// # Errors
///
/// [`Error::NotFound`] for a missing file; [`Error::InvalidInput`] naming the path for
/// a file that cannot be read or is not a SQLite database; others as SQLite reports
/// them.
pub(crate) fn read_only(path: &Path, busy_timeout: Duration) -> Result<(Connection, bool)> {
    let shown = shown(path);
    if !path.is_file() {
        return Err(Error::NotFound(format!("no SQLite database at {shown}")));
    }
    let failed = |e| open_failed(&shown, e, "reading");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let file_alone = is_wal(path) && !wal_of(path).exists();
    let conn = if file_alone {
        let uri = format!("file:{}?immutable=1", uri_path(path));
        Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(failed)?;
    conn.busy_timeout(busy_timeout).map_err(failed)?;
    // The first read: where a file that is not SQLite shows.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(failed)?;
    Ok((conn, !file_alone))
}

/// Whether the file at `path` says it is in WAL mode (its header's read and write
/// versions are 2).
fn is_wal(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0; 20];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut header))
        .is_ok_and(|()| header[18] == 2 && header[19] == 2)
}

/// `path` as the path of a `file:` URI: every byte but unreserved ones and `/`
/// percent-encoded (a `?`, `#` or `%` in a file name must not be read as URI syntax).
fn uri_path(path: &Path) -> String {
    let mut uri = String::new();
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

/// `attempt`, again every 10 ms while it answers busy or locked, for up to `timeout`.
fn retry_busy<T>(
    timeout: Duration,
    mut attempt: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match attempt() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

/// The path as errors and logs show it.
pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Refuses a directory or a special file; creates the missing directories.
fn prepare(path: &Path) -> Result<()> {
    let shown = shown(path);
    let refuse = |rule: String| Err(Error::invalid("database path", &shown, rule));
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => refuse(format!(
            "is a directory: name the database file inside it, such as {}",
            path.join("count.db").display()
        )),
        Ok(meta) if !meta.is_file() => refuse("is not a regular file".into()),
        Ok(_) => Ok(()),
        // Missing, or under something that is not a directory: making the directories
        // says which.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            let parent = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
            if let Some(file) = parent.ancestors().find(|a| a.is_file()) {
                return refuse(format!(
                    "cannot create its directory {}: {} is a file, not a directory",
                    parent.display(),
                    file.display()
                ));
            }
            std::fs::create_dir_all(&parent).or_else(|e| {
                refuse(format!(
                    "cannot create its directory {}: {e}",
                    parent.display()
                ))
            })
        }
        Err(e) => refuse(format!("cannot be inspected: {e}")),
    }
}

/// An open for `access` (reading, writing) that failed: the common causes said
/// plainly, naming the path.
fn open_failed(shown: &str, e: rusqlite::Error, access: &str) -> Error {
    let rule = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => format!("is not a SQLite database ({e})"),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            let able = if access == "reading" {
                "readable"
            } else {
                "writable"
            };
            format!(
                "cannot be opened for {access} ({e}): check that the file and its directory \
                 are {able} by this process"
            )
        }
        Some(ErrorCode::DatabaseCorrupt) => format!("is damaged ({e})"),
        _ => return classify(&format!("opening {shown}"), e),
    };
    Error::invalid("database", shown, rule)
}

/// The database file a writer opened, and its log: which files they were then. A
/// commit into a file deleted or replaced since would be seen by no one and lost at
/// the next open, so every write checks them first (a `stat` each).
#[derive(Debug)]
pub(crate) struct OpenedFiles {
    database: (PathBuf, Option<(u64, u64)>),
    /// `None` when there was no `-wal` at the open (not in WAL mode).
    log: Option<(PathBuf, (u64, u64))>,
    /// The WAL index, shared by every process on the file: one that opens the file
    /// after it was replaced makes a new one, and the two then write to the log
    /// without each other's lock. `None` when there was none at the open.
    index: Option<(PathBuf, (u64, u64))>,
}

impl OpenedFiles {
    /// The files at `path`, `path-wal` and `path-shm` as they are now, once the writer
    /// opened them.
    pub(crate) fn record(path: &Path) -> OpenedFiles {
        let log = wal_of(path);
        let index = with_suffix(path, "-shm");
        OpenedFiles {
            database: (path.to_owned(), identity(path)),
            log: identity(&log).map(|id| (log, id)),
            index: identity(&index).map(|id| (index, id)),
        }
    }

    /// Checks that the files at the paths are still the ones opened.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] naming the file deleted or replaced since the open
    /// (retryable: it works again once the file is put back).
    pub(crate) fn check(&self) -> Result<()> {
        let (path, opened) = &self.database;
        if identity(path) != *opened {
            return Err(replaced("the database file", path));
        }
        if let Some((log, opened)) = &self.log
            && identity(log) != Some(*opened)
        {
            return Err(replaced("the database's write-ahead log", log));
        }
        match &self.index {
            Some((index, opened)) if identity(index) != Some(*opened) => {
                Err(replaced("the database's write-ahead log index", index))
            }
            _ => Ok(()),
        }
    }
}

fn replaced(what: &str, path: &Path) -> Error {
    Error::unavailable(format!(
        "{what} {} was deleted or replaced since it was opened: nothing was written \
         (counts committed there would be lost); put it back, or restart to open the \
         file now at that path",
        path.display()
    ))
}

/// The write-ahead log beside the database at `path`: `path-wal`.
pub(crate) fn wal_of(path: &Path) -> PathBuf {
    with_suffix(path, "-wal")
}

/// `path` with `suffix` added to its file name (SQLite's `-wal`, `-shm`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What identifies the file behind a path: a file deleted or replaced after it was
/// opened has another identity (or none).
#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Elsewhere the check is skipped.
#[cfg(not(unix))]
fn identity(_path: &Path) -> Option<(u64, u64)> {
    None
}
