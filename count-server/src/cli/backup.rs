//! `count-server backup`: a consistent copy of a SQLite database, also while a
//! server writes to it.

use std::path::{Path, PathBuf};

use super::failure::Failure;
use super::source::Database;
use count::{Backend, Migrations};

pub(super) const HELP: &str = concat!(
    "\
Examples:
  count-server backup --db-path /var/lib/count/count.db /backups/count-2026-12-07.db
  count-server backup --db-url sqlite:count.db --force backup.db

This is the way to back up a SQLite database, running or not: a copy of count.db
made with cp misses the counts still in count.db-wal, and may be torn while a server
writes. The backup is one snapshot (every count committed before it started, whole
batches only), taken through SQLite's online backup API beside the running server,
which keeps counting. It reads the database read-only. DEST is written only once the
copy is whole; an existing DEST is refused unless --force. PostgreSQL and CockroachDB
are backed up with their own tools (pg_dump, BACKUP).

",
    super::exit_codes!()
);

/// The options of `count-server backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// The new SQLite file to write the copy into.
    #[arg(value_name = "DEST")]
    dest: PathBuf,

    /// Replace DEST if it exists (it is removed once the copy is whole).
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    database: Database,
}

pub(super) async fn run(args: BackupArgs) -> Result<(), Failure> {
    let opened = args.database.open(Migrations::ReadOnly).await?;
    let Backend::Sqlite(sqlite) = opened.backend() else {
        return Err(Failure::Usage(format!(
            "{} is not SQLite: count-server backup copies a SQLite database (back up \
             PostgreSQL or CockroachDB with their own tools: pg_dump, BACKUP)",
            opened.description()
        )));
    };
    let dest = &args.dest;
    if let Some(source) = sqlite.path() {
        refuse_the_source(source, dest)?;
    }
    if args.force && dest.is_file() {
        // Copied beside it first, so a failed backup leaves the old one.
        let fresh = PathBuf::from(format!("{}.new-{}", dest.display(), std::process::id()));
        sqlite.backup(&fresh).await?;
        std::fs::rename(&fresh, dest)
            .map_err(|e| Failure::Usage(format!("cannot replace {}: {e}", dest.display())))?;
    } else {
        sqlite.backup(dest).await?;
    }
    super::print(&format!(
        "{}: backed up into {}.\n",
        opened.description(),
        dest.display()
    ))
}

/// Refuses a DEST that is the database itself, or its `-wal` or `-shm`: replacing
/// one of those under a running server would lose what it acknowledges.
fn refuse_the_source(source: &Path, dest: &Path) -> Result<(), Failure> {
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let dest_absolute = absolute(dest);
    let dest_file = std::fs::metadata(dest).ok();
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", source.display()));
        let same_path = absolute(&file) == dest_absolute;
        let same_file = match (&dest_file, std::fs::metadata(&file)) {
            (Some(dest), Ok(file)) => same_inode(dest, &file),
            _ => false,
        };
        if same_path || same_file {
            return Err(Failure::Usage(format!(
                "the backup file {} is the database's own {}: name a new file",
                dest.display(),
                if suffix.is_empty() { "file" } else { suffix }
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_inode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_inode(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}
