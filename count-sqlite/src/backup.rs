//! A consistent copy of a database while it is written: SQLite's online backup API.

use std::path::Path;

use count_core::{Error, Result};
use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use crate::error::classify;
use crate::open::with_suffix;

/// Copies `source`'s database into the new file `dest`, in one step: one read
/// transaction, so the copy is one committed snapshot, and in WAL mode writes go on
/// beside it (a backup in several steps would start again after each write, and
/// might never end while writes go on). The copy is written to a file of this call's
/// own beside `dest` and linked into place once whole, never over a file: `dest`
/// never holds half a copy, and two backups at once cannot mix.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming `dest` when it exists or cannot be written; the
/// database's error otherwise (nothing is left at `dest` then).
pub(crate) fn copy(source: &Connection, dest: &Path) -> Result<()> {
    let shown = dest.display().to_string();
    let refuse = |rule: String| Error::invalid("backup file", &shown, rule);
    if dest.symlink_metadata().is_ok() {
        return Err(refuse(
            "exists: a backup is written to a new file (name another, or remove it first)".into(),
        ));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let partial = with_suffix(dest, &format!(".partial-{}-{nanos}", std::process::id()));
    let copied = (|| {
        let mut copy =
            Connection::open(&partial).map_err(|e| refuse(format!("cannot be created ({e})")))?;
        let doing = format!("backing up into {shown}");
        let backup = Backup::new(source, &mut copy).map_err(|e| classify(&doing, e))?;
        match backup.step(-1).map_err(|e| classify(&doing, e))? {
            StepResult::Done => {}
            other => {
                return Err(Error::unavailable(format!(
                    "{doing}: the database was busy ({other:?}); try again"
                )));
            }
        }
        drop(backup);
        // Closed before the rename: the copy is whole in its file then.
        copy.close()
            .map_err(|(_, e)| refuse(format!("cannot be written ({e})")))?;
        // A link, not a rename: it fails, rather than replaces, a file that
        // appeared at `dest` meanwhile.
        std::fs::hard_link(&partial, dest).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                refuse("was created while the backup ran: a backup is written to a new file".into())
            }
            _ => refuse(format!(
                "cannot be put in place from {}: {e}",
                partial.display()
            )),
        })
    })();
    let _ = std::fs::remove_file(&partial);
    copied
}
