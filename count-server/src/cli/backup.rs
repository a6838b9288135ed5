//! `count-server backup`: a consistent copy of a SQLite database, also while a
//! server writes to it.

use std::path::PathBuf;

use super::failure::Failure;
use super::source::Database;
use crate::backend::Migrations;

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
    let Some(sqlite) = opened.sqlite() else {
        return Err(Failure::Usage(format!(
            "{} is not SQLite: count-server backup copies a SQLite database (back up \
             PostgreSQL or CockroachDB with their own tools: pg_dump, BACKUP)",
            opened.description
        )));
    };
    let dest = &args.dest;
    if args.force && dest.is_file() {
        // Copied beside it first, so a failed backup leaves the old one.
        let fresh = PathBuf::from(format!("{}.new", dest.display()));
        let _ = std::fs::remove_file(&fresh);
        sqlite.backup(&fresh).await?;
        std::fs::rename(&fresh, dest)
            .map_err(|e| Failure::Usage(format!("cannot replace {}: {e}", dest.display())))?;
    } else {
        sqlite.backup(dest).await?;
    }
    super::print(&format!(
        "{}: backed up into {}.\n",
        opened.description,
        dest.display()
    ))
}
