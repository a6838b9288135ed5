//! Where a command reads and writes counts: a running count server (gRPC), or a
//! database opened directly.

use std::path::PathBuf;
use std::sync::Arc;

use count_core::{Counter, Error};

use super::failure::Failure;
use count::{Migrations, Opened};

use crate::backend::{Backend, Location, sqlite_url};

/// Where the counts are: `--server` (a running count-server), or a [`Database`].
#[derive(Debug, Clone, clap::Args)]
pub struct Source {
    /// A running count-server, as http://host:7777 or https://host:7777. Wins over
    /// --db-url, --db-path and DB_URL.
    #[arg(long, global = true, env = "COUNT_SERVER", value_name = "URL")]
    server: Option<String>,

    /// The access token the server asks for (sent as a bearer token to --server).
    #[arg(
        long,
        global = true,
        env = "COUNT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    /// Trust this CA certificate (PEM) for an https --server, besides the system's.
    #[arg(long, global = true, value_name = "PEM")]
    ca_cert: Option<PathBuf>,

    #[command(flatten)]
    database: Database,
}

/// A database opened directly: `--db-path`, `--db-url`, or the server's default
/// SQLite file.
#[derive(Debug, Clone, clap::Args)]
pub struct Database {
    /// The database, as the server takes it: sqlite:PATH, postgresql://... or
    /// postgres://... Not with --db-path (as for the server: naming both is refused).
    #[arg(
        long,
        global = true,
        env = "DB_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    db_url: Option<String>,

    /// The SQLite database file. Not with --db-url. Without either, the file the
    /// server counts into by default ($XDG_DATA_HOME/count/count.db, else
    /// ~/.local/share/count/count.db, else ./count.db).
    #[arg(long, global = true, env = "COUNT_DB_PATH", value_name = "FILE")]
    db_path: Option<PathBuf>,

    /// Which database --db-url is: auto tells PostgreSQL and CockroachDB apart by the
    /// server's version().
    #[arg(long, global = true, env = "COUNT_BACKEND", value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
}

impl Source {
    /// Connects to the server, or opens the database without changing its schema:
    /// [`Migrations::ReadOnly`] for a command that only reads.
    pub(crate) async fn open(&self, migrations: Migrations) -> Result<Arc<dyn Counter>, Failure> {
        match self.server.as_deref().filter(|url| !url.is_empty()) {
            Some(url) => self.connect(url).await,
            None => Ok(self.database.open(migrations).await?.counter()),
        }
    }

    async fn connect(&self, url: &str) -> Result<Arc<dyn Counter>, Failure> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        // A path would be ignored: the calls go to the server's own paths.
        if rest.is_none_or(|rest| rest.trim_end_matches('/').contains('/')) {
            return Err(Failure::Usage(format!(
                "invalid --server {url:?}: expected http://host:port or https://host:port"
            )));
        }
        let mut options = count::Options::new().kind(count::Kind::Grpc);
        match self.token.as_deref() {
            Some("") => {
                return Err(Failure::Usage(
                    "the token (--token, COUNT_TOKEN) is empty: give the server's token, or \
                     none for a server without one"
                        .to_owned(),
                ));
            }
            Some(token) => options = options.token(token),
            None => {}
        }
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                Failure::Usage(format!("cannot read --ca-cert {}: {e}", path.display()))
            })?;
            options = options.ca_cert_pem(pem);
        }
        Ok(options.open(url).await?.counter())
    }
}

impl Database {
    /// Opens the database the options name: `--db-url` or `--db-path`, else the
    /// server's default SQLite file (the server's rule, [`Location::choose`]: both is
    /// a usage error). A SQLite file goes the same way whichever names it: without
    /// [`Migrations::Apply`], a missing one is [`Failure::NotFound`] (only `migrate`
    /// creates a database) and a schema that is not current refused.
    pub(crate) async fn open(&self, migrations: Migrations) -> Result<Opened, Failure> {
        let location = Location::choose(self.db_url.as_deref(), self.db_path.as_deref())?;
        let url = match &location {
            Location::Url(url) => url.clone(),
            Location::File(path) | Location::DefaultFile(path) => sqlite_url(path)?,
        };
        match crate::backend::open(&url, self.backend, migrations).await {
            Err(Error::NotFound(message)) if matches!(location, Location::DefaultFile(_)) => {
                Err(Failure::NotFound(format!(
                    "{message} (the server's default file): say where the counts are with \
                     --server URL, --db-url URL or --db-path FILE"
                )))
            }
            opened => Ok(opened?),
        }
    }
}
