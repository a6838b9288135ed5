//! `cargo run -p axum-app`, then `curl localhost:3000/users/1` and
//! `curl localhost:3000/stats/today`. `COUNT_LISTEN` sets the address; `DB_URL`
//! (`postgresql://...`) counts in PostgreSQL instead of memory.

use std::sync::Arc;

use count_core::{CountQueue, Counter};
use count_memory::MemoryCounter;
use count_pg::PgCounter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (counter, storage): (Arc<dyn Counter>, &str) = match std::env::var("DB_URL") {
        Ok(url) => (Arc::new(PgCounter::connect(&url).await?), "in PostgreSQL"),
        Err(_) => (Arc::new(MemoryCounter::new()), "in memory and lost on exit"),
    };
    let queue = CountQueue::builder(counter.clone()).build()?;
    let listen = std::env::var("COUNT_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "listening on http://{}; counts are {storage}",
        listener.local_addr()?
    );
    axum::serve(listener, axum_app::app(queue.clone(), counter))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    queue.shutdown().await?;
    Ok(())
}
