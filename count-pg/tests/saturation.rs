//! Totals near `i64::MAX`: reports of that endpoint and day stop at `i64::MAX`
//! instead of failing with `bigint out of range`, other endpoints and days are
//! unaffected, and the day's rollup succeeds.

use count_core::testkit::{Scope, day};
use count_core::{Batch, Counter, DateRange, Dimension, Method, Period, TotalsQuery};
use count_pg::PgCounter;
use count_testcluster::TestCluster;

const MAX: u64 = i64::MAX as u64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_near_i64_max_saturate_and_the_rollup_succeeds() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let url = cluster.fresh_database("saturation");
    let counter = PgCounter::connect(&url).await.unwrap();
    let s = Scope::new();
    let (d, next) = (day("2024-12-01"), day("2024-12-02"));
    counter
        .write(&s.batch(&[
            (
                Method::Get,
                "/big",
                "2024-12-01T10:00:00Z",
                Batch::MAX_COUNT,
            ),
            (Method::Get, "/small", "2024-12-01T10:00:00Z", 3),
            (Method::Get, "/big", "2024-12-02T10:00:00Z", 4),
        ]))
        .await
        .unwrap();
    // A rolled-up total 5 below i64::MAX, and a raw row of i64::MAX beside the
    // batch's, by direct SQL: as a long-running or damaged database could hold.
    let client = counter.client().await.unwrap();
    let big_key: i64 = client
        .query_one(
            "SELECT id FROM count.count_keys WHERE path = $1",
            &[&s.path("/big").as_str()],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "INSERT INTO count.daily_key_totals (day, key_id, total) VALUES (DATE '2024-12-01', $1, $2)",
            &[&big_key, &(i64::MAX - 5)],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO count.raw_batches (day, key_ids, buckets, counts, n_counts)
             VALUES (DATE '2024-12-01', ARRAY[$1::bigint], ARRAY[1733047200::bigint], ARRAY[$2::bigint], 1)",
            &[&big_key, &i64::MAX],
        )
        .await
        .unwrap();

    let range = DateRange::new(d, next).unwrap();
    let expected = vec![
        (
            "2024-12-01".to_string(),
            Method::Get,
            "/big".to_string(),
            MAX,
        ),
        (
            "2024-12-01".to_string(),
            Method::Get,
            "/small".to_string(),
            3,
        ),
        ("2024-12-02".to_string(), Method::Get, "/big".to_string(), 4),
    ];
    let daily = counter.daily_totals(range).await.expect("a daily report");
    assert_eq!(s.daily(&daily), expected, "live");
    let month = counter
        .period_totals(Period::month(2024, 12).unwrap())
        .await
        .expect("a period report");
    assert_eq!(
        s.period(&month),
        [
            (Method::Get, "/big".into(), MAX),
            (Method::Get, "/small".into(), 3)
        ]
    );
    let by_day = TotalsQuery::new(range, &[Dimension::Day, Dimension::Endpoint])
        .unwrap()
        .endpoint(s.endpoint(Method::Get, "/big"));
    let grouped: Vec<u64> = counter
        .totals(&by_day)
        .await
        .expect("a grouped report")
        .iter()
        .map(|t| t.total)
        .collect();
    assert_eq!(grouped, [MAX, 4]);
    let other_day = counter.daily_totals(DateRange::day(next)).await.unwrap();
    assert_eq!(s.daily(&other_day), expected[2..]);

    let rolled = counter.rollup(d).await.expect("the rollup succeeds");
    assert_eq!(s.daily(&rolled), expected[..2]);
    // Stored saturated, and a later count on top stays there.
    let stored: i64 = client
        .query_one(
            "SELECT total FROM count.daily_key_totals WHERE day = DATE '2024-12-01' AND key_id = $1",
            &[&big_key],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, i64::MAX);
    counter
        .write(&s.batch(&[(Method::Get, "/big", "2024-12-01T11:00:00Z", 1)]))
        .await
        .unwrap();
    let again = counter.rollup(d).await.expect("a second rollup");
    assert_eq!(s.daily(&again), expected[..2]);
    assert_eq!(
        s.daily(&counter.daily_totals(range).await.unwrap()),
        expected
    );
}
