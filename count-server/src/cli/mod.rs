//! The operator commands of `count-server`: print totals, roll up days, apply or
//! check the schema's migrations, from a running server or straight from a database;
//! back up a SQLite database.
//!
//! Each command prints its result on standard output and its errors on standard
//! error, and ends with an exit code scripts can rely on:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the backend or the server failed or could not be reached |
//! | 2 | a bad or missing argument (also clap's code for usage errors) |
//! | 3 | not found: no SQLite file at `--db-path` or `--db-url sqlite:...` |
//! | 4 | the database's schema is not this version's: migrations are missing, or a newer version of count wrote it |
//! | 5 | the server refused the access token |

mod backup;
mod failure;
mod limits;
mod migrate;
mod rollup;
mod source;
pub(crate) mod table;
mod totals;

use std::process::ExitCode;

pub use backup::BackupArgs;
use failure::Failure;
pub use limits::LimitsArgs;
pub use migrate::MigrateArgs;
pub use rollup::RollupArgs;
pub use source::{Database, Source};
pub use totals::{RangeArgs, TotalsArgs};

/// The exit codes, as the module's table lists them, for the commands' `--help`.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  done
  1  the backend or the server failed or could not be reached
  2  a bad or missing argument
  3  not found: no SQLite file at --db-path or --db-url sqlite:... (or the server's default file)
  4  the database's schema is not this version's (missing migrations: `count-server migrate`; a newer one: upgrade count)
  5  the server refused the access token"
    };
}
use exit_codes;

/// What `count-server --help` can end with: the operator commands in one line each,
/// with examples and the exit codes.
pub const HELP: &str = concat!(
    "Operator commands (count-server <command> --help for each):
  count-server totals --server http://localhost:7777 --month 2026-11
  count-server rollup --db-path /var/lib/count/count.db
  count-server migrate --check --db-url postgresql://count@db/count
  count-server backup --db-path /var/lib/count/count.db /backups/count.db
    (the way to back up a SQLite database, also while the server runs)
  count-server limits set-limit free-daily --period day --amount 1000

",
    exit_codes!()
);

/// An operator command: `count-server <command> ...`.
#[derive(Debug, clap::Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Print the requests counted over a day, a month, a year or a range of days, as a
    /// table, CSV or JSON.
    #[command(after_help = totals::HELP)]
    Totals(TotalsArgs),
    /// Roll up days: fold their counts into daily totals (the server does this by
    /// itself for finished days; this is for catching up by hand).
    #[command(after_help = rollup::HELP)]
    Rollup(RollupArgs),
    /// Apply the database's schema migrations, or check that none is missing.
    #[command(after_help = migrate::HELP)]
    Migrate(MigrateArgs),
    /// Copy a SQLite database into a new file, consistently, also while a server
    /// writes to it: the way to back one up (a plain copy misses what is in its -wal).
    #[command(after_help = backup::HELP)]
    Backup(BackupArgs),
    /// Manage limits: the limits, the plans that name them, the subjects' plans; and
    /// see who stands where against them.
    #[command(after_help = limits::HELP)]
    Limits(LimitsArgs),
}

/// Runs `command`: its output goes to standard output, a failure is printed on
/// standard error as `count-server: <what failed>`, and the exit code says which kind
/// of failure it was (see the module's table).
pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Totals(args) => totals::run(args).await,
        Command::Rollup(args) => rollup::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Limits(args) => limits::run(args).await,
        Command::Backup(args) => backup::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("count-server: {failure}");
            failure.exit_code()
        }
    }
}

/// Writes `text` to standard output; a reader that went away (`| head`) is no failure.
fn print(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Backend(
            count_core::Error::unavailable(format!("writing to standard output: {e}")),
        )),
        _ => Ok(()),
    }
}
