//! Property: for any sequence of records (explicit timestamps across day, month and
//! year boundaries, with and without subjects and statuses), flushes, failed and
//! repeated writes, and rollups, the totals of every day, month and year equal
//! exactly what was recorded in it, per endpoint and per subject and status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use count_core::jiff::Timestamp;
use count_core::testkit::{Fault, FlakyCounter};
use count_core::{
    BucketWidth, CountKey, CountQueue, Counter, DateRange, Day, Dimension, Method, Path, Period,
    Status, Subject, TotalsQuery,
};
use count_memory::MemoryCounter;
use proptest::prelude::*;

/// Instants on the edges that matter: year ends, a leap day, month ends, the epoch.
const EDGES: [i64; 6] = [
    1_704_067_200, // 2024-01-01T00:00:00Z
    1_709_164_800, // 2024-02-29T00:00:00Z
    1_709_251_200, // 2024-03-01T00:00:00Z
    1_735_689_600, // 2025-01-01T00:00:00Z
    1_677_628_800, // 2023-03-01T00:00:00Z
    0,             // 1970-01-01T00:00:00Z
];

#[derive(Debug, Clone)]
enum Op {
    Record {
        path: usize,
        method: usize,
        /// 0: no subject; else `SUBJECTS[subject - 1]`.
        subject: usize,
        /// 0: no status; else the method's `status - 1`th status.
        status: usize,
        second: i64,
    },
    Flush,
    /// The next write applies but reports failure; the retry must not double count.
    FailAfterWrite,
    /// The next write fails without applying.
    FailBeforeWrite,
    Rollup {
        second: i64,
    },
    RollupTwiceAtOnce {
        second: i64,
    },
}

fn second() -> impl Strategy<Value = i64> {
    // Within two minutes either side of an edge, or anywhere in that edge's day.
    (
        0..EDGES.len(),
        prop_oneof![-120i64..120, -86_400i64..86_400],
    )
        .prop_map(|(edge, offset)| EDGES[edge] + offset)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..4usize, 0..3usize, 0..3usize, 0..3usize, second())
            .prop_map(|(path, method, subject, status, second)| {
                Op::Record { path, method, subject, status, second }
            }),
        2 => Just(Op::Flush),
        1 => Just(Op::FailAfterWrite),
        1 => Just(Op::FailBeforeWrite),
        1 => second().prop_map(|second| Op::Rollup { second }),
        1 => second().prop_map(|second| Op::RollupTwiceAtOnce { second }),
    ]
}

const METHODS: [Method; 3] = [Method::Get, Method::Post, Method::Grpc];
const SUBJECTS: [&str; 2] = ["tenant-a", "tenant-b"];

/// The `status`th optional status of a request made with `method`.
fn status_of(method: Method, status: usize) -> Option<Status> {
    let codes: [i64; 2] = if method == Method::Grpc {
        [0, 14]
    } else {
        [200, 503]
    };
    (status > 0).then(|| Status::for_method(method, codes[status - 1]).unwrap())
}

fn day_of(second: i64) -> Day {
    Day::of(Timestamp::from_second(second).unwrap()).unwrap()
}

async fn check(ops: Vec<Op>, bucket_seconds: u64) -> Result<(), TestCaseError> {
    let counter = Arc::new(FlakyCounter::new(MemoryCounter::new()));
    let queue = CountQueue::builder(counter.clone())
        .bucket_width(Duration::from_secs(bucket_seconds))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap();
    let paths: Vec<Path> = (0..4)
        .map(|i| Path::new(&format!("/model/{i}")).unwrap())
        .collect();
    let subjects: Vec<Subject> = SUBJECTS.iter().map(|s| Subject::new(s).unwrap()).collect();
    // (day, path index, method index) → count
    let mut expected = BTreeMap::<(Day, usize, usize), u64>::new();
    // (subject, status) → count, over everything
    let mut by_dimensions = BTreeMap::<(Option<Subject>, Option<Status>), u64>::new();
    for op in ops {
        match op {
            Op::Record {
                path,
                method,
                subject,
                status,
                second,
            } => {
                let at = Timestamp::from_second(second).unwrap();
                let subject = (subject > 0).then(|| subjects[subject - 1]);
                let status = status_of(METHODS[method], status);
                if subject.is_none() && status.is_none() {
                    queue.record_at((METHODS[method], paths[path]), at).unwrap();
                } else {
                    let key = CountKey::of(METHODS[method], paths[path], subject, status);
                    queue.record_at(key, at).unwrap();
                }
                *expected.entry((day_of(second), path, method)).or_default() += 1;
                *by_dimensions.entry((subject, status)).or_default() += 1;
            }
            // Failures are expected here: injected faults.
            Op::Flush => drop(queue.flush().await),
            Op::FailAfterWrite => counter.plan([Fault::FailAfter]),
            Op::FailBeforeWrite => counter.plan([Fault::FailBefore]),
            Op::Rollup { second } => {
                counter.rollup(day_of(second)).await.unwrap();
            }
            Op::RollupTwiceAtOnce { second } => {
                let day = day_of(second);
                let (a, b) = tokio::join!(counter.rollup(day), counter.rollup(day));
                prop_assert_eq!(a.unwrap(), b.unwrap());
            }
        }
    }
    while queue.flush().await.is_err() {}

    let totals = |filter: &dyn Fn(Day) -> bool| {
        let mut sums = BTreeMap::<(String, Method), u64>::new();
        for (&(day, path, method), &n) in &expected {
            if filter(day) {
                *sums
                    .entry((paths[path].as_str().to_owned(), METHODS[method]))
                    .or_default() += n;
            }
        }
        sums.into_iter()
            .map(|((p, m), n)| (m, p, n))
            .collect::<Vec<_>>()
    };
    let report = |t: Vec<count_core::PeriodTotal>| {
        t.into_iter()
            .map(|t| {
                (
                    t.endpoint.method,
                    t.endpoint.path.as_str().to_owned(),
                    t.total,
                )
            })
            .collect::<Vec<_>>()
    };
    let days: Vec<Day> = expected.keys().map(|k| k.0).collect();
    for &day in &days {
        let periods = [
            Period::Day(day),
            Period::month(day.year(), day.month()).unwrap(),
            Period::year(day.year()).unwrap(),
        ];
        for period in periods {
            let range = period.range();
            let want = totals(&|d| range.contains(d));
            let got = report(counter.period_totals(period).await.unwrap());
            prop_assert_eq!(got, want, "period {}", period);
        }
    }
    // And one range over everything, day by day.
    if let (Some(&first), Some(&last)) = (days.first(), days.last()) {
        let daily = counter
            .daily_totals(DateRange::new(first, last).unwrap())
            .await
            .unwrap();
        let sum: u64 = daily.iter().map(|t| t.total).sum();
        prop_assert_eq!(sum, expected.values().sum::<u64>());
        let range = DateRange::new(first, last).unwrap();
        let query = TotalsQuery::new(range, &[Dimension::Subject, Dimension::Status]).unwrap();
        let got: Vec<_> = counter
            .totals(&query)
            .await
            .unwrap()
            .into_iter()
            .map(|t| ((t.subject, t.status), t.total))
            .collect();
        let want: Vec<_> = by_dimensions.into_iter().collect();
        prop_assert_eq!(got, want, "per subject and status");
    }
    let stats = queue.stats();
    prop_assert_eq!(stats.written, expected.values().sum::<u64>());
    prop_assert_eq!(stats.pending, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn totals_of_every_period_equal_what_was_recorded(
        ops in proptest::collection::vec(op(), 1..120),
        bucket_seconds in prop_oneof![Just(1u64), Just(60), Just(300), Just(900)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(ops, bucket_seconds))?;
    }
}

/// The model of a bucket: nanoseconds since the epoch, floored to `width` seconds.
fn model_bucket(total_nanos: i128, width: i64) -> i64 {
    total_nanos.div_euclid(i128::from(width) * 1_000_000_000) as i64 * width
}

/// Any accepted instant, with a fraction of a second, weighted toward the epoch.
fn instant() -> impl Strategy<Value = (i64, i32)> {
    let (min, max) = (
        count_core::backend::MIN_TIMESTAMP.as_second(),
        count_core::backend::MAX_TIMESTAMP.as_second() - 1,
    );
    (
        prop_oneof![min..=max, -86_400i64..86_400, Just(-1i64), Just(min)],
        prop_oneof![0..1_000_000_000i32, Just(0), Just(999_999_999)],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Every way from a timestamp to a bucket (the queue's, a stream's, a batch's)
    /// floors, before 1970 as after it: 1969-12-31T23:59:59.5Z is on 1969-12-31.
    #[test]
    fn a_timestamp_lands_in_the_bucket_and_day_that_hold_it(
        (seconds, nanos) in instant(),
        width in prop_oneof![Just(1i64), Just(60), Just(300), Just(900)],
    ) {
        let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
        let at = Timestamp::from_nanosecond(total).unwrap();
        let bucket_width = BucketWidth::new(Duration::from_secs(width as u64)).unwrap();
        prop_assert_eq!(bucket_width.bucket_of(at), model_bucket(total, width));
        prop_assert_eq!(count_core::backend::floor_second(at), model_bucket(total, 1));
        let day = Day::of(at).unwrap();
        prop_assert_eq!(day.unix_day(), model_bucket(total, 86_400) / 86_400);
        let key = count_core::Endpoint::new(Method::Get, Path::new("/model").unwrap());
        let count = count_core::BucketCount::new(key, at, 1);
        prop_assert_eq!(count.bucket.as_second(), model_bucket(total, 1));
        prop_assert_eq!(count.day(), day);
    }
}
