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
        .run_once(count_core::MIN_TIMESTAMP)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("grace"), "{err}");
}
