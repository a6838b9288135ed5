//! `cargo run -p axum-app`, then:
//!
//! ```sh
//! curl -H 'x-api-key: demo-key-acme' localhost:3000/users/1
//! curl -H 'x-api-key: demo-key-globex' -X POST localhost:3000/users
//! curl localhost:3000/users/1          # 401: no key (counted, without a caller)
//! curl localhost:3000/stats/callers    # who called what today, and how it ended
//! for i in 1 2 3 4 5 6; do curl -si -H 'x-api-key: demo-key-globex' localhost:3000/users/1 | head -1; done
//!                                      # globex is on the free plan: the 6th is 429
//! ```
//!
//! The plans (`free`: 5 requests a day to `/users`, `pro`: 1,000) are stored in the
//! database the first time; `count-server limits ... --db-path count-axum-app.db`
//! changes them while the app runs.
//!
//! Counts go into the SQLite file `count-axum-app.db` (in the working directory);
//! `DB_URL` picks another place: `sqlite:path`, `postgresql://...`, or `memory:`.
//! `COUNT_LISTEN` sets the address.

use axum_app::ApiKeys;
use count::limits::{Limiter, LimiterSettings};
use count::{CountQueue, CounterExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DB_URL").unwrap_or_else(|_| "sqlite:count-axum-app.db".into());
    let opened = count::open(&url).await?;
    let counter = opened.counter();
    let queue = CountQueue::builder(counter.clone()).build()?;
    if counter.policy().await?.version == 0 {
        counter.replace_policy(0, &axum_app::demo_policy()).await?;
    }
    let limiter = Limiter::start(counter.clone(), LimiterSettings::default()).await?;
    let keys = ApiKeys::new([("demo-key-acme", "acme"), ("demo-key-globex", "globex")])?;
    let listen = std::env::var("COUNT_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "listening on http://{}; counting into {}{}; API keys: demo-key-acme, demo-key-globex",
        listener.local_addr()?,
        opened.description(),
        if opened.is_durable() {
            ""
        } else {
            " (lost on exit)"
        },
    );
    axum::serve(
        listener,
        axum_app::app(queue.clone(), counter, keys, limiter.clone()),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // Quota leased and not used goes back, for the other replicas.
    limiter.stop().await;
    queue.shutdown().await?;
    // Every count into the database file itself, out of its -wal: a copy of the file
    // then holds them all.
    opened.stop().await?;
    Ok(())
}
