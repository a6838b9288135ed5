//! [`Migrations::Check`](crate::backend::Migrations::Check) for SQLite: reads a
//! database file's schema version without creating or changing anything.
//! count-sqlite's open always migrates, so a read-only command checks here first.
//! (To be replaced by a check-only open in count-sqlite when it has one.)

use std::path::{Path, PathBuf};

use count_core::{Error, Result};
use count_sqlite::SCHEMA_VERSION;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// Checks the file a `sqlite:` URL names: it exists, is SQLite, and its schema is
/// at this build's version. A private in-memory database (`sqlite::memory:`) and a
/// URL count-sqlite will refuse anyway pass here.
///
/// # Errors
///
/// [`Error::NotFound`] when there is no file; [`Error::InvalidInput`] for `schema`
/// when it is not migrated, misses migrations or was written by a newer version of
/// count; for `database` when it is not a SQLite database.
pub(crate) async fn check(url: &str) -> Result<()> {
    let Some(path) = file_of(url) else {
        return Ok(());
    };
    tokio::task::spawn_blocking(move || check_file(&path))
        .await
        .map_err(|e| Error::unavailable(format!("checking the SQLite schema: {e}")))?
}

/// The file of `sqlite:path` or `sqlite:///abs/path`, absolute; `None` for
/// `sqlite::memory:` and forms count-sqlite refuses.
fn file_of(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    if rest == ":memory:" || rest.is_empty() {
        return None;
    }
    let path = match rest.strip_prefix("//") {
        Some(absolute) if absolute.starts_with('/') => absolute,
        Some(_) => return None,
        None => rest,
    };
    std::path::absolute(path).ok()
}

fn check_file(path: &Path) -> Result<()> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(Error::NotFound(format!("no SQLite database at {shown}")));
    }
    let not_sqlite = |e: rusqlite::Error| {
        Error::invalid(
            "database",
            &shown,
            format!("cannot be read as a SQLite database: {e}"),
        )
    };
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(not_sqlite)?;
    let tracked: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'count_migrations'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(not_sqlite)?;
    if tracked.is_none() {
        return Err(Error::invalid(
            "schema",
            &shown,
            "is not migrated: it has no count_migrations table (apply the migrations to create the tables)",
        ));
    }
    let applied: Vec<i64> = conn
        .prepare("SELECT version FROM count_migrations ORDER BY version")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(not_sqlite)?;
    version_rule(&applied).map_or(Ok(()), |rule| Err(Error::invalid("schema", &shown, rule)))
}

/// What is wrong with the applied migration versions `applied`, if anything.
fn version_rule(applied: &[i64]) -> Option<String> {
    if let Some(newer) = applied.iter().find(|&&v| v > SCHEMA_VERSION) {
        return Some(format!(
            "was written by a newer version of count (schema version {newer}; this version \
             knows versions up to {SCHEMA_VERSION}): upgrade count to open it"
        ));
    }
    let missing: Vec<String> = (1..=SCHEMA_VERSION)
        .filter(|v| !applied.contains(v))
        .map(|v| v.to_string())
        .collect();
    if missing.is_empty() {
        return None;
    }
    let at = applied
        .last()
        .map_or("no migration applied".to_owned(), |v| {
            format!("at version {v}")
        });
    Some(format!(
        "is not migrated ({at}): missing migration{} {} (apply the migrations)",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_file() {
        assert_eq!(file_of("sqlite:///a/b.db"), Some(PathBuf::from("/a/b.db")));
        assert!(file_of("sqlite:rel.db").unwrap().ends_with("rel.db"));
        assert!(file_of("sqlite:rel.db").unwrap().is_absolute());
        assert_eq!(file_of("sqlite::memory:"), None);
        assert_eq!(file_of("sqlite://host/x"), None);
        assert_eq!(file_of("postgres://h/d"), None);
    }

    #[test]
    fn versions_are_checked_exactly() {
        assert_eq!(
            version_rule(&(1..=SCHEMA_VERSION).collect::<Vec<_>>()),
            None
        );
        let none = version_rule(&[]).unwrap();
        assert!(
            none.contains("no migration applied") && none.contains("missing migration 1"),
            "{none}"
        );
        let newer = version_rule(&[1, SCHEMA_VERSION + 1]).unwrap();
        assert!(newer.contains("newer version"), "{newer}");
    }
}
