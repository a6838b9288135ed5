//! `cargo run -p axum-app`, then `curl localhost:3000/users/1` and
//! `curl localhost:3000/stats/today`. `COUNT_LISTEN` sets the address.

use std::sync::Arc;

use count_core::{CountQueue, Counter};
use count_memory::MemoryCounter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("DB_URL").is_some() {
        eprintln!(
            "DB_URL is set, but the PostgreSQL backend (count-pg) is not built yet: \
             counting in memory"
        );
    }
    let counter: Arc<dyn Counter> = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build()?;
    let listen = std::env::var("COUNT_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "listening on http://{}; counts are in memory and lost on exit",
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
