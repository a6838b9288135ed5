//! A timestamp's fraction of a second never moves a count to another day: `Add` and
//! `AddCounts` floor it, before 1970 as after.

mod common;

use std::time::Duration;

use common::*;
use count_core::{Counter, DateRange, Day};
use count_grpc::proto::count::v1 as pb;

/// 1969-12-31T23:59:59.5Z and 1899-12-31T23:59:59.25Z.
const BEFORE_1970: (i64, i32) = (-1, 500_000_000);
const BEFORE_1900: (i64, i32) = (-2_208_988_801, 250_000_000);

fn at((seconds, nanos): (i64, i32)) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

/// The total counted on `day`.
async fn on(counter: &dyn Counter, day: Day) -> u64 {
    sum(counter, DateRange::day(day)).await
}

fn day(year: i32, month: u32, day: u32) -> Day {
    Day::new(year, month, day).unwrap()
}

#[tokio::test]
async fn a_fraction_before_1970_stays_on_the_day_it_belongs_to() {
    let (memory, served) = Served::memory().await;
    let mut messages = Vec::new();
    for (instant, n) in [(BEFORE_1970, 7), (BEFORE_1900, 5)] {
        for _ in 0..n {
            messages.push(pb::AddRequest {
                request_timestamp: at(instant),
                ..add(GET, "/old", 0)
            });
        }
    }
    // As a unit (with a deadline) ...
    let mut request = tonic::Request::new(tokio_stream::iter(messages.clone()));
    request.set_timeout(Duration::from_secs(10));
    served.client().await.add(request).await.unwrap();
    // ... and as a feed (without one).
    served
        .client()
        .await
        .add(tokio_stream::iter(messages))
        .await
        .unwrap();
    // AddCounts' buckets are floored as well.
    let counts = [(BEFORE_1970, 11), (BEFORE_1900, 13)]
        .into_iter()
        .map(|(instant, n)| pb::BucketCount {
            bucket: at(instant),
            ..bucket_count(GET, "/old", 0, n)
        })
        .collect();
    served
        .client()
        .await
        .add_counts(pb::AddCountsRequest {
            batch_id: batch_id(1),
            counts,
        })
        .await
        .unwrap();

    assert_eq!(on(&*memory, day(1969, 12, 31)).await, 7 + 7 + 11);
    assert_eq!(on(&*memory, day(1970, 1, 1)).await, 0);
    assert_eq!(on(&*memory, day(1899, 12, 31)).await, 5 + 5 + 13);
    assert_eq!(on(&*memory, day(1900, 1, 1)).await, 0);
    served.stop().await;
}
