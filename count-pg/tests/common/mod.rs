//! What the tests that stop or kill their server share.

use std::sync::Arc;
use std::time::Duration;

use count_core::CountQueue;
use count_pg::PgCounter;
use count_testcluster::TestCluster;

/// A cluster of the test's own and a counter on a fresh database of it, giving up a
/// connection attempt after 1 s (the server is down at times); `None` skips (never
/// in CI).
pub(crate) async fn own_cluster_and_counter(prefix: &str) -> Option<(TestCluster, Arc<PgCounter>)> {
    let cluster = TestCluster::own()?;
    let url = cluster.fresh_database(prefix);
    let counter = PgCounter::builder(&url)
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    Some((cluster, Arc::new(counter)))
}

/// A queue over `counter` that writes every `flush_every` and retries failed writes
/// soon (50 ms, backing off to 500 ms), each attempt bounded by 5 s.
pub(crate) fn retrying_queue(counter: &Arc<PgCounter>, flush_every: Duration) -> CountQueue {
    CountQueue::builder(counter.clone())
        .flush_interval(flush_every)
        .write_timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap()
}
