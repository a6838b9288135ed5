//! `RollupScheduler`: finished days after the grace period, and catching up.

use std::sync::Arc;
use std::time::Duration;

use count_core::testkit::{at, batch, day};
use count_core::{Counter, DateRange, RollupScheduler};
use count_memory::MemoryCounter;

async fn counter_with_days(days: &[&str]) -> Arc<MemoryCounter> {
    let counter = Arc::new(MemoryCounter::new());
    for d in days {
        let bucket = format!("{d}T12:00:00Z");
        counter.write(&batch(&[("/r", &bucket, 1)])).await.unwrap();
    }
    counter
}

#[tokio::test]
async fn rolls_up_finished_days_only_after_the_grace_period() {
    let counter =
        counter_with_days(&["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]).await;
    let scheduler = RollupScheduler::new(counter.clone()).grace(Duration::from_secs(3600));

    // 00:30 on the 4th: the 3rd ended half an hour ago, inside the grace period.
    let rolled = scheduler
        .run_once(at("2024-03-04T00:30:00Z"))
        .await
        .unwrap();
    assert_eq!(rolled, [day("2024-03-01"), day("2024-03-02")]);
    // 01:00: the 3rd is finished now; the 4th is today.
    let rolled = scheduler
        .run_once(at("2024-03-04T01:00:00Z"))
        .await
        .unwrap();
    assert_eq!(rolled, [day("2024-03-03")]);
    assert!(
        scheduler
            .run_once(at("2024-03-04T23:59:59Z"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(counter.raw_rows(), 1, "today's counts stay raw");

    // Reports do not change with rollups.
    let range = DateRange::new(day("2024-03-01"), day("2024-03-04")).unwrap();
    let totals = counter.daily_totals(range).await.unwrap();
    assert_eq!(
        totals.iter().map(|t| t.total).collect::<Vec<_>>(),
        [1, 1, 1, 1]
    );
}

#[tokio::test]
async fn catches_up_on_every_missed_day_and_late_counts() {
    let counter = counter_with_days(&["2023-12-30", "2024-01-15", "2024-02-29"]).await;
    let rolled = RollupScheduler::new(counter.clone())
        .run_once(at("2024-06-01T12:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        rolled,
        [day("2023-12-30"), day("2024-01-15"), day("2024-02-29")]
    );
    assert_eq!(counter.raw_rows(), 0);

    // A late count for a rolled-up day is rolled up by the next run, and added.
    counter
        .write(&batch(&[("/r", "2024-01-15T23:00:00Z", 5)]))
        .await
        .unwrap();
    let rolled = RollupScheduler::new(counter.clone())
        .run_once(at("2024-06-01T13:00:00Z"))
        .await
        .unwrap();
    assert_eq!(rolled, [day("2024-01-15")]);
    let totals = counter.rollup(day("2024-01-15")).await.unwrap();
    assert_eq!(totals[0].total, 6);
}

#[tokio::test]
async fn a_spawned_scheduler_rolls_up_past_days_and_stops() {
    let counter = counter_with_days(&["2020-01-01", "2020-01-02"]).await;
    let task = RollupScheduler::new(counter.clone()).spawn();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counter.raw_rows() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was rolled up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.stop().await;
    let totals = counter
        .daily_totals(DateRange::new(day("2020-01-01"), day("2020-01-02")).unwrap())
        .await
        .unwrap();
    assert_eq!(totals.len(), 2);
}

#[tokio::test]
async fn a_grace_reaching_before_year_one_is_an_error() {
    let counter = counter_with_days(&[]).await;
    let scheduler = RollupScheduler::new(counter).grace(Duration::from_secs(86_400 * 400));
    let err = scheduler
        .run_once(count_core::backend::MIN_TIMESTAMP)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("grace"), "{err}");
}

/// A counter whose rollup of one day fails until told otherwise.
#[derive(Debug)]
struct FailingDay {
    inner: MemoryCounter,
    day: count_core::Day,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Counter for FailingDay {
    async fn write(&self, batch: &count_core::Batch) -> count_core::Result<()> {
        self.inner.write(batch).await
    }

    async fn rollup(
        &self,
        day: count_core::Day,
    ) -> count_core::Result<Vec<count_core::DailyTotal>> {
        if day == self.day && self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(count_core::Error::unavailable(format!(
                "injected: rolling up {day} fails"
            )));
        }
        self.inner.rollup(day).await
    }

    async fn daily_totals(
        &self,
        range: DateRange,
    ) -> count_core::Result<Vec<count_core::DailyTotal>> {
        self.inner.daily_totals(range).await
    }

    async fn totals(
        &self,
        query: &count_core::TotalsQuery,
    ) -> count_core::Result<Vec<count_core::GroupedTotal>> {
        self.inner.totals(query).await
    }

    async fn unrolled_days(
        &self,
        before: count_core::Day,
    ) -> count_core::Result<Vec<count_core::Day>> {
        self.inner.unrolled_days(before).await
    }
}

/// A day whose rollup fails does not stop the scheduler: the
/// later days are rolled up, the failure is counted, and the day is rolled up once it
/// can be.
#[tokio::test]
async fn a_failing_day_does_not_stop_the_later_ones_and_is_retried() {
    let counter = Arc::new(FailingDay {
        inner: MemoryCounter::new(),
        day: day("2024-05-02"),
        failing: true.into(),
    });
    for d in ["2024-05-01", "2024-05-02", "2024-05-03"] {
        let bucket = format!("{d}T12:00:00Z");
        counter.write(&batch(&[("/r", &bucket, 1)])).await.unwrap();
    }
    let scheduler = RollupScheduler::new(counter.clone());
    let now = at("2024-06-01T00:00:00Z");
    let rolled = scheduler.run_once(now).await.unwrap();
    assert_eq!(rolled, [day("2024-05-01"), day("2024-05-03")]);
    let stats = scheduler.stats();
    assert_eq!((stats.days_rolled, stats.failures), (2, 1), "{stats:?}");
    assert_eq!(stats.failing_days, [day("2024-05-02")]);
    assert_eq!(stats.unrolled_days, 1);

    counter
        .failing
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let rolled = scheduler.run_once(now).await.unwrap();
    assert_eq!(rolled, [day("2024-05-02")]);
    let stats = scheduler.stats();
    assert!(
        stats.failing_days.is_empty() && stats.unrolled_days == 0,
        "{stats:?}"
    );
    assert!(stats.last_rollup.is_some());
}
