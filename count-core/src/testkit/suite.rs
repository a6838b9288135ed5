//! The clauses of the [`Counter`](crate::Counter) contract, one `pub async fn` each.

use std::sync::Arc;

use crate::testkit::{Scope, at, day};
use crate::{Batch, BucketCount, Counter, DateRange, Error, Method, Period};

use Method::{Get, Grpc, Patch, Post};

/// Runs every clause of the contract against `counter`, the dimensions' included.
pub async fn run_all(counter: Arc<dyn Counter>) {
    let shared = Arc::clone(&counter);
    let counter = &*shared;
    write_is_exactly_once(counter).await;
    counts_land_on_their_utc_day(counter).await;
    reports_are_ordered_by_day_path_method(counter).await;
    rollup_adds_and_repeats_safely(counter).await;
    late_writes_after_rollup_are_kept(counter).await;
    concurrent_rollups_racing_writes_are_exact(counter).await;
    periods_cover_days_months_years_and_leap_days(counter).await;
    empty_ranges_and_periods_are_empty(counter).await;
    many_endpoints_in_one_batch(counter).await;
    unrolled_days_lists_what_needs_a_rollup(counter).await;
    large_counts_are_exact(counter).await;
    crate::testkit::run_dimensions(counter).await;
    crate::testkit::overflow_subjects_through_a_queue(Arc::clone(&shared)).await;
}

/// A repeated batch id with the same counts is a no-op that returns `Ok`; with other
/// counts it is refused with [`Error::BatchConflict`] and changes nothing.
pub async fn write_is_exactly_once(counter: &dyn Counter) {
    let s = Scope::new();
    let first = s.batch(&[
        (Get, "/a", "2024-01-10T10:00:00Z", 3),
        (Post, "/a", "2024-01-10T10:01:00Z", 1),
    ]);
    counter.write(&first).await.expect("first write");
    counter.write(&first).await.expect("a repeated write is Ok");
    counter.write(&first).await.expect("a repeated write is Ok");
    let same_id_other_counts = Batch::new(
        first.id(),
        vec![BucketCount::new(
            s.endpoint(Get, "/a"),
            at("2024-01-10T11:00:00Z"),
            100,
        )],
    )
    .unwrap();
    match counter.write(&same_id_other_counts).await {
        Err(Error::BatchConflict { id }) => assert_eq!(id, first.id()),
        other => panic!("a reused batch id with other counts must be refused, got {other:?}"),
    }
    let other_n = Batch::new(
        first.id(),
        first
            .counts()
            .iter()
            .map(|c| BucketCount::new(c.key, c.bucket, c.n + 1))
            .collect(),
    )
    .unwrap();
    assert!(
        matches!(
            counter.write(&other_n).await,
            Err(Error::BatchConflict { .. })
        ),
        "a reused id whose counts differ only in n must be refused"
    );
    let totals = counter
        .daily_totals(DateRange::day(day("2024-01-10")))
        .await
        .unwrap();
    assert_eq!(
        s.daily(&totals),
        [
            ("2024-01-10".into(), Get, "/a".into(), 3),
            ("2024-01-10".into(), Post, "/a".into(), 1),
        ],
        "a batch id must apply exactly once"
    );
}

/// A count belongs to the UTC day of its bucket, however close to midnight.
pub async fn counts_land_on_their_utc_day(counter: &dyn Counter) {
    let s = Scope::new();
    counter
        .write(&s.batch(&[
            (Get, "/m", "2024-03-09T23:59:59Z", 1),
            (Get, "/m", "2024-03-10T00:00:00Z", 2),
            (Get, "/m", "2024-03-10T23:59:00Z", 4),
            (Get, "/m", "2024-03-11T00:00:00Z", 8),
        ]))
        .await
        .unwrap();
    let range = DateRange::new(day("2024-03-09"), day("2024-03-11")).unwrap();
    let totals = counter.daily_totals(range).await.unwrap();
    assert_eq!(
        s.daily(&totals),
        [
            ("2024-03-09".into(), Get, "/m".into(), 1),
            ("2024-03-10".into(), Get, "/m".into(), 6),
            ("2024-03-11".into(), Get, "/m".into(), 8),
        ]
    );
}

/// Daily totals come ordered by day, then path bytewise, then method wire number;
/// period totals by path, then method.
pub async fn reports_are_ordered_by_day_path_method(counter: &dyn Counter) {
    let s = Scope::new();
    counter
        .write(&s.batch(&[
            (Post, "/b", "2024-04-02T01:00:00Z", 1),
            (Get, "/b", "2024-04-02T01:00:00Z", 1),
            (Grpc, "/a", "2024-04-02T01:00:00Z", 1),
            (Patch, "/B", "2024-04-01T01:00:00Z", 1),
            (Get, "/a", "2024-04-01T01:00:00Z", 1),
        ]))
        .await
        .unwrap();
    let range = DateRange::new(day("2024-04-01"), day("2024-04-02")).unwrap();
    let totals = counter.daily_totals(range).await.unwrap();
    assert_eq!(
        s.daily(&totals),
        [
            ("2024-04-01".into(), Patch, "/B".into(), 1),
            ("2024-04-01".into(), Get, "/a".into(), 1),
            ("2024-04-02".into(), Grpc, "/a".into(), 1),
            ("2024-04-02".into(), Get, "/b".into(), 1),
            ("2024-04-02".into(), Post, "/b".into(), 1),
        ]
    );
    let period = counter
        .period_totals(Period::month(2024, 4).unwrap())
        .await
        .unwrap();
    assert_eq!(
        s.period(&period),
        [
            (Patch, "/B".into(), 1),
            (Get, "/a".into(), 1),
            (Grpc, "/a".into(), 1),
            (Get, "/b".into(), 1),
            (Post, "/b".into(), 1),
        ]
    );
}

/// Rollup returns the day's totals; a second rollup changes nothing; reports are the
/// same before and after.
pub async fn rollup_adds_and_repeats_safely(counter: &dyn Counter) {
    let s = Scope::new();
    let d = day("2024-05-05");
    counter
        .write(&s.batch(&[
            (Get, "/r", "2024-05-05T08:00:00Z", 5),
            (Get, "/r", "2024-05-05T09:00:00Z", 6),
            (Post, "/r", "2024-05-05T09:00:00Z", 7),
        ]))
        .await
        .unwrap();
    let expected = vec![
        ("2024-05-05".to_string(), Get, "/r".to_string(), 11),
        ("2024-05-05".to_string(), Post, "/r".to_string(), 7),
    ];
    let before = counter.daily_totals(DateRange::day(d)).await.unwrap();
    assert_eq!(s.daily(&before), expected, "live before the rollup");
    let rolled = counter.rollup(d).await.unwrap();
    assert_eq!(
        s.daily(&rolled),
        expected,
        "rollup returns the day's totals"
    );
    let again = counter.rollup(d).await.unwrap();
    assert_eq!(s.daily(&again), expected, "a second rollup changes nothing");
    let after = counter.daily_totals(DateRange::day(d)).await.unwrap();
    assert_eq!(s.daily(&after), expected, "reports after the rollup");
}

/// Counts written after a day was rolled up are kept, reported, and added by the
/// next rollup.
pub async fn late_writes_after_rollup_are_kept(counter: &dyn Counter) {
    let s = Scope::new();
    let d = day("2024-06-06");
    counter
        .write(&s.batch(&[(Get, "/late", "2024-06-06T12:00:00Z", 10)]))
        .await
        .unwrap();
    counter.rollup(d).await.unwrap();
    counter
        .write(&s.batch(&[(Get, "/late", "2024-06-06T12:00:00Z", 5)]))
        .await
        .unwrap();
    let live = counter.daily_totals(DateRange::day(d)).await.unwrap();
    assert_eq!(
        s.daily(&live),
        [("2024-06-06".into(), Get, "/late".into(), 15)]
    );
    let next = d.next().unwrap();
    assert!(
        counter.unrolled_days(next).await.unwrap().contains(&d),
        "a day with late counts needs a rollup again"
    );
    let rolled = counter.rollup(d).await.unwrap();
    assert_eq!(
        s.daily(&rolled),
        [("2024-06-06".into(), Get, "/late".into(), 15)]
    );
}

/// Two rollups of a day, racing four writers of the same day: exact totals.
pub async fn concurrent_rollups_racing_writes_are_exact(counter: &dyn Counter) {
    rollups_racing_writes_are_exact(counter, counter).await;
}

/// [`concurrent_rollups_racing_writes_are_exact`] through two counters on the same
/// storage (two processes): writers and rollups split between them.
pub async fn rollups_racing_writes_are_exact(a: &dyn Counter, b: &dyn Counter) {
    let s = Scope::new();
    let d = day("2024-07-07");
    tokio::join!(
        write_race(a, &s, 0),
        write_race(b, &s, 1),
        write_race(a, &s, 2),
        write_race(b, &s, 3),
        roll_race(a, d),
        roll_race(b, d)
    );
    let gets = ROUNDS * (1 + 2 + 3 + 4);
    let posts = ROUNDS * 4;
    let expected = vec![
        ("2024-07-07".to_string(), Get, "/race".to_string(), gets),
        ("2024-07-07".to_string(), Post, "/race".to_string(), posts),
    ];
    let live = b.daily_totals(DateRange::day(d)).await.unwrap();
    assert_eq!(s.daily(&live), expected, "live totals after the race");
    let (x, y) = tokio::join!(a.rollup(d), b.rollup(d));
    assert_eq!(s.daily(&x.unwrap()), expected, "concurrent final rollup");
    assert_eq!(s.daily(&y.unwrap()), expected, "concurrent final rollup");
    let next = d.next().expect("a later day");
    let unrolled = a.unrolled_days(next).await.unwrap();
    assert!(
        !unrolled.contains(&d),
        "{d} still has raw counts after the rollups"
    );
}

const ROUNDS: u64 = 20;

/// Writer `w` of the race: each batch twice, as after an unknown outcome.
async fn write_race(counter: &dyn Counter, s: &Scope, w: u64) {
    for i in 0..ROUNDS {
        let minute = format!("2024-07-07T10:{:02}:00Z", i % 60);
        let batch = s.batch(&[(Get, "/race", &minute, w + 1), (Post, "/race", &minute, 1)]);
        counter.write(&batch).await.expect("write");
        // Retried after an unknown outcome: must not double count.
        counter.write(&batch).await.expect("repeat");
    }
}

async fn roll_race(counter: &dyn Counter, d: crate::Day) {
    for _ in 0..ROUNDS / 2 {
        counter.rollup(d).await.expect("rollup");
    }
}

/// Day, month and year periods, across a leap day and a year boundary.
pub async fn periods_cover_days_months_years_and_leap_days(counter: &dyn Counter) {
    let s = Scope::new();
    counter
        .write(&s.batch(&[
            (Get, "/p", "2023-02-28T12:00:00Z", 1),
            (Get, "/p", "2023-12-31T23:59:59Z", 2),
            (Get, "/p", "2024-01-01T00:00:00Z", 4),
            (Get, "/p", "2024-02-28T12:00:00Z", 8),
            (Get, "/p", "2024-02-29T12:00:00Z", 16),
            (Get, "/p", "2024-03-01T00:00:00Z", 32),
            (Get, "/p", "2024-12-31T23:59:00Z", 64),
            (Get, "/p", "2025-01-01T00:00:00Z", 128),
        ]))
        .await
        .unwrap();
    // Rolled-up and raw counts must sum alike: roll up part of them.
    counter.rollup(day("2024-02-29")).await.unwrap();
    counter.rollup(day("2023-12-31")).await.unwrap();
    let cases = [
        (Period::Day(day("2024-02-29")), 16),
        (Period::Day(day("2024-02-28")), 8),
        (Period::month(2024, 2).unwrap(), 24),
        (Period::month(2024, 3).unwrap(), 32),
        (Period::month(2023, 2).unwrap(), 1),
        (Period::month(2023, 12).unwrap(), 2),
        (Period::year(2023).unwrap(), 3),
        (Period::year(2024).unwrap(), 4 + 8 + 16 + 32 + 64),
        (Period::year(2025).unwrap(), 128),
    ];
    for (period, total) in cases {
        let totals = counter.period_totals(period).await.unwrap();
        assert_eq!(
            s.period(&totals),
            [(Get, "/p".into(), total)],
            "period {period}"
        );
    }
    let leap = counter
        .daily_totals(DateRange::new(day("2024-02-28"), day("2024-03-01")).unwrap())
        .await
        .unwrap();
    assert_eq!(
        s.daily(&leap),
        [
            ("2024-02-28".into(), Get, "/p".into(), 8),
            ("2024-02-29".into(), Get, "/p".into(), 16),
            ("2024-03-01".into(), Get, "/p".into(), 32),
        ]
    );
}

/// A range or period without counts is an empty list, not an error.
pub async fn empty_ranges_and_periods_are_empty(counter: &dyn Counter) {
    let s = Scope::new();
    counter
        .write(&s.batch(&[(Get, "/e", "2024-08-08T08:00:00Z", 1)]))
        .await
        .unwrap();
    let before = DateRange::new(day("2024-08-01"), day("2024-08-07")).unwrap();
    let totals = counter
        .daily_totals(before)
        .await
        .expect("an empty range is Ok");
    assert!(s.daily(&totals).is_empty(), "{totals:?}");
    let totals = counter
        .daily_totals(DateRange::day(day("2024-08-09")))
        .await
        .unwrap();
    assert!(s.daily(&totals).is_empty(), "{totals:?}");
    let totals = counter
        .period_totals(Period::month(2024, 9).unwrap())
        .await
        .unwrap();
    assert!(s.period(&totals).is_empty(), "{totals:?}");
    let far = counter
        .daily_totals(DateRange::day(day("0001-01-01")))
        .await
        .expect("the first supported day");
    assert!(s.daily(&far).is_empty());
}

/// Thousands of endpoints in one batch, every method: each total exact.
pub async fn many_endpoints_in_one_batch(counter: &dyn Counter) {
    let s = Scope::new();
    let paths: Vec<String> = (0..1000).map(|i| format!("/many/{i:04}")).collect();
    let methods = [Get, Post, Grpc];
    let mut rows = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        for (j, &method) in methods.iter().enumerate() {
            rows.push((
                method,
                path.as_str(),
                "2024-09-09T09:09:00Z",
                (i * 3 + j + 1) as u64,
            ));
        }
    }
    counter.write(&s.batch(&rows)).await.unwrap();
    let totals = counter
        .daily_totals(DateRange::day(day("2024-09-09")))
        .await
        .unwrap();
    let got = s.daily(&totals);
    assert_eq!(got.len(), 3000);
    for (k, (_, method, path, total)) in got.iter().enumerate() {
        let (i, j) = (k / 3, k % 3);
        assert_eq!(
            (method, path, *total),
            (&methods[j], &paths[i], (i * 3 + j + 1) as u64)
        );
    }
    let rolled = counter.rollup(day("2024-09-09")).await.unwrap();
    assert_eq!(s.daily(&rolled), got);
}

/// `unrolled_days(before)` lists the days before `before` with counts not yet
/// rolled up, in order, and drops a day once it is rolled up.
pub async fn unrolled_days_lists_what_needs_a_rollup(counter: &dyn Counter) {
    let s = Scope::new();
    let (d1, d2, d3) = (day("2024-10-01"), day("2024-10-02"), day("2024-10-03"));
    counter
        .write(&s.batch(&[
            (Get, "/u", "2024-10-01T01:00:00Z", 1),
            (Get, "/u", "2024-10-02T01:00:00Z", 1),
            (Get, "/u", "2024-10-03T01:00:00Z", 1),
        ]))
        .await
        .unwrap();
    let days = counter.unrolled_days(d3).await.unwrap();
    assert!(days.windows(2).all(|w| w[0] < w[1]), "in order: {days:?}");
    assert!(days.contains(&d1) && days.contains(&d2), "{days:?}");
    assert!(!days.contains(&d3), "`before` itself is excluded: {days:?}");
    counter.rollup(d1).await.unwrap();
    let days = counter.unrolled_days(d3).await.unwrap();
    assert!(!days.contains(&d1) && days.contains(&d2), "{days:?}");
    counter.rollup(d2).await.unwrap();
    counter.rollup(d3).await.unwrap();
    let days = counter.unrolled_days(d3.next().unwrap()).await.unwrap();
    assert!(
        !days.contains(&d1) && !days.contains(&d2) && !days.contains(&d3),
        "{days:?}"
    );
}

/// Counts far past 32 bits sum exactly, raw and rolled up.
pub async fn large_counts_are_exact(counter: &dyn Counter) {
    let s = Scope::new();
    let big = Batch::MAX_COUNT / 2;
    let d = day("2024-11-11");
    counter
        .write(&s.batch(&[(Get, "/big", "2024-11-11T00:00:00Z", big)]))
        .await
        .unwrap();
    counter.rollup(d).await.unwrap();
    counter
        .write(&s.batch(&[(Get, "/big", "2024-11-11T00:01:00Z", big + 1)]))
        .await
        .unwrap();
    let totals = counter.daily_totals(DateRange::day(d)).await.unwrap();
    assert_eq!(
        s.daily(&totals),
        [("2024-11-11".into(), Get, "/big".into(), 2 * big + 1)]
    );
}
