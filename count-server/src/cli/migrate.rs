//! `count-server migrate`: bring a database's schema up to this version's, or check
//! that it is.

use super::failure::Failure;
use super::source::Database;
use count::Migrations;

pub(super) const HELP: &str = "\
Examples:
  count-server migrate --check --db-url postgresql://count@db/count
  count-server migrate --db-path /var/lib/count/count.db

The server applies missing migrations when it starts; this command is for a database
whose schema is managed apart from the server (a deploy step, a read-only user).
`migrate` on a SQLite file that does not exist creates it.

Exit codes:
  0  the schema is current (after applying what was missing, without --check)
  1  the database failed or could not be reached
  2  a bad or missing argument
  3  not found: no SQLite file at --db-path or --db-url sqlite:... (with --check)
  4  with --check: migrations are missing (named on standard error); also without
     --check: the schema was written by a newer version of count";

/// The options of `count-server migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// Change nothing: say whether the schema is current, and what is missing when it
    /// is not (exit code 4).
    #[arg(long)]
    check: bool,

    #[command(flatten)]
    database: Database,
}

pub(super) async fn run(args: MigrateArgs) -> Result<(), Failure> {
    // A check first, also without --check: it tells what the apply will add.
    let missing = match args.database.open(Migrations::ReadOnly).await {
        Ok(opened) => {
            return super::print(&format!(
                "{}: the schema is current.\n",
                opened.description()
            ));
        }
        Err(Failure::SchemaNotCurrent(message)) if !args.check => {
            missing_part(&message).map(str::to_owned)
        }
        Err(Failure::NotFound(_)) if !args.check => None,
        Err(failure) => return Err(failure),
    };
    let opened = args.database.open(Migrations::Apply).await?;
    let applied = missing.map_or_else(String::new, |m| format!(" (before: {m})"));
    super::print(&format!(
        "{}: migrated; the schema is current{applied}.\n",
        opened.description()
    ))
}

/// What a backend's "schema not current" message says was missing: `missing
/// migration 2 (name)`, or `no schema` for a database never migrated.
fn missing_part(message: &str) -> Option<&str> {
    let first = message.lines().next()?;
    if let Some(start) = first.find("missing migration") {
        let rest = &first[start..];
        return Some(rest.split(';').next().unwrap_or(rest).trim_end());
    }
    first
        .contains("no count_migrations table")
        .then_some("no schema")
}

#[cfg(test)]
mod tests {
    use super::missing_part;

    #[test]
    fn what_was_missing_is_read_from_the_first_line() {
        let v1 = "invalid schema \"count\": is not migrated (at version 1): missing migration \
                  2 (count_keys, raw_batches); connect with migrate(true) to apply it\n\
                  (`count-server migrate` applies the missing migrations)";
        assert_eq!(
            missing_part(v1),
            Some("missing migration 2 (count_keys, raw_batches)")
        );
        let empty = "invalid schema \"/x.db\": is not migrated: it has no count_migrations \
                     table (apply the migrations to create the tables)\n\
                     (`count-server migrate` applies the missing migrations)";
        assert_eq!(missing_part(empty), Some("no schema"));
        assert_eq!(missing_part("something else\nmissing migrations"), None);
    }
}
