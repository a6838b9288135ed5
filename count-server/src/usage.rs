//! Where subjects stand against their limits, read every 15 s for `/metrics`: the
//! subjects nearest their limits (20 at most, so the series stay bounded), and how
//! many reads failed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use count_core::limits::{Usage, usage};
use count_core::{Counter, CounterExt};
use tokio::task::JoinHandle;

/// How often usage is read.
const EVERY: Duration = Duration::from_secs(15);
/// How many subject-limit pairs `/metrics` shows at most.
pub(crate) const NEAREST: usize = 20;

/// The last reading.
#[derive(Debug, Default)]
pub(crate) struct UsageWatch {
    nearest: Mutex<Vec<Usage>>,
    failures: AtomicU64,
    /// Unix second of the last reading that worked (0: none yet).
    read_at: AtomicI64,
}

impl UsageWatch {
    /// Starts reading usage from `counter` every 15 s, the first at once.
    pub(crate) fn spawn(counter: Arc<dyn Counter>) -> (Arc<UsageWatch>, JoinHandle<()>) {
        let watch = Arc::new(UsageWatch::default());
        let task = tokio::spawn({
            let watch = Arc::clone(&watch);
            async move {
                let mut tick = tokio::time::interval(EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    watch.read(&*counter).await;
                }
            }
        });
        (watch, task)
    }

    async fn read(&self, counter: &dyn Counter) {
        let now = count_core::jiff::Timestamp::now().as_second();
        let read = async {
            let policy = counter.policy().await?;
            usage(counter, &policy.policy, now, None).await
        };
        match tokio::time::timeout(EVERY, read).await {
            Ok(Ok(mut rows)) => {
                rows.truncate(NEAREST);
                *self.nearest.lock().unwrap_or_else(|e| e.into_inner()) = rows;
                self.read_at.store(now, Relaxed);
            }
            Ok(Err(error)) => {
                self.failures.fetch_add(1, Relaxed);
                tracing::warn!(%error, "count-server: cannot read usage against limits");
            }
            Err(_) => {
                self.failures.fetch_add(1, Relaxed);
                tracing::warn!("count-server: reading usage against limits took over 15 s");
            }
        }
    }

    /// The subjects nearest their limits, nearest first.
    pub(crate) fn nearest(&self) -> Vec<Usage> {
        self.nearest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Readings that failed.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    /// Unix second of the last reading that worked (0: none yet).
    pub(crate) fn read_at(&self) -> i64 {
        self.read_at.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use count::memory::MemoryCounter;
    use count_core::limits::{Assignment, Limit, LimitPeriod, Policy};
    use count_core::{Batch, BatchId, BucketCount, CountKey, Method, Path, Status, Subject};

    use super::*;

    #[tokio::test]
    async fn the_nearest_subjects_are_read_bounded() {
        let counter = MemoryCounter::new();
        let mut policy = Policy::default();
        policy
            .limits
            .insert("daily".into(), Limit::new(LimitPeriod::Day, 10));
        policy.plans.insert("free".into(), vec!["daily".into()]);
        let now = count_core::jiff::Timestamp::now();
        let mut counts = Vec::new();
        for i in 0..30u64 {
            let subject = format!("s{i:02}");
            policy
                .subjects
                .insert(subject.clone(), Assignment::plan("free"));
            let key = CountKey::of(
                Method::Get,
                Path::new("/u").unwrap(),
                Some(Subject::new(&subject).unwrap()),
                Status::http(200).ok(),
            );
            if i > 0 {
                counts.push(BucketCount::new(key, now, i));
            }
        }
        counter.replace_policy(0, &policy).await.unwrap();
        let id = BatchId {
            writer: count_core::uuid::Uuid::new_v4(),
            seq: 0,
        };
        counter
            .write(&Batch::new(id, counts).unwrap())
            .await
            .unwrap();
        let watch = UsageWatch::default();
        watch.read(&counter).await;
        let nearest = watch.nearest();
        assert_eq!(nearest.len(), NEAREST);
        assert_eq!((nearest[0].subject.as_str(), nearest[0].used), ("s29", 29));
        assert_eq!(nearest[19].subject, "s10");
        assert!(watch.read_at() > 0 && watch.failures() == 0);
    }
}
