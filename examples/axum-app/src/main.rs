//! `cargo run -p axum-app`, then:
//!
//! ```sh
//! curl -H 'x-api-key: demo-key-acme' localhost:3000/users/1
//! curl -H 'x-api-key: demo-key-globex' -X POST localhost:3000/users
//! curl localhost:3000/users/1          # 401: no key (counted, without a caller)
//! curl localhost:3000/stats/callers    # who called what today, and how it ended
//! ```
//!
//! Counts go into the SQLite file `count-axum-app.db` (in the working directory);
//! `DB_URL` picks another place: `sqlite:path`, `postgresql://...`, or `memory:`.
//! `COUNT_LISTEN` sets the address.

use std::sync::Arc;

use axum_app::ApiKeys;
use count_core::{CountQueue, Counter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DB_URL").unwrap_or_else(|_| "sqlite:count-axum-app.db".into());
    // For SQLite, also the handle that empties its log at the end.
    let mut sqlite = None;
    let (counter, storage): (Arc<dyn Counter>, String) = if url == "memory:" {
        let memory = count_memory::MemoryCounter::new();
        (Arc::new(memory), "memory (lost on exit)".into())
    } else if url.starts_with("sqlite:") {
        let opened = count_sqlite::SqliteCounter::connect(&url).await?;
        sqlite = Some(opened.clone());
        (Arc::new(opened), url)
    } else {
        let pg = count_pg::PgCounter::connect(&url).await?;
        (Arc::new(pg), "PostgreSQL".into())
    };
    let queue = CountQueue::builder(counter.clone()).build()?;
    let keys = ApiKeys::new([("demo-key-acme", "acme"), ("demo-key-globex", "globex")])?;
    let listen = std::env::var("COUNT_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "listening on http://{}; counting into {storage}; API keys: demo-key-acme, demo-key-globex",
        listener.local_addr()?
    );
    axum::serve(listener, axum_app::app(queue.clone(), counter, keys))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    queue.shutdown().await?;
    // Every count into the database file itself, out of its -wal: a copy of the file
    // then holds them all.
    if let Some(sqlite) = sqlite {
        sqlite.checkpoint().await?;
    }
    Ok(())
}
