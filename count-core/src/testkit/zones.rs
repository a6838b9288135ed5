//! The clauses on hours, time zones and billing cycles: a count belongs to the local
//! day and hour of its bucket in every zone, before a rollup, after it, and from the
//! days kept for a zone; what is no longer kept is refused, never shifted.

use jiff::Timestamp;

use crate::testkit::{Scope, day, fresh_id};
use crate::{
    Batch, BucketCount, Counter, DateRange, Dimension, Error, GroupedTotal, Hour, Method, Period,
    TotalsQuery, Zone,
};

/// Runs every clause on hours, zones and cycles against `counter`. Run it after
/// [`run_all`](crate::testkit::run_all): its last clause forgets the quarter hours
/// before 1900-01-01 for good (no other clause counts that early), and its zones'
/// days stay kept.
pub async fn run_zones(counter: &dyn Counter) {
    local_days_are_exact_in_every_zone(counter).await;
    hours_are_kept_before_and_after_a_rollup(counter).await;
    a_cycle_on_the_31st_crosses_a_leap_february(counter).await;
    hours_past_the_retention_are_refused(counter).await;
}

/// A batch of GET `/z` counts at the Unix seconds given.
fn batch_at(s: &Scope, counts: &[(i64, u64)]) -> Batch {
    let endpoint = s.endpoint(Method::Get, "/z");
    let counts = counts
        .iter()
        .map(|&(at, n)| BucketCount::new(endpoint, Timestamp::from_second(at).unwrap(), n))
        .collect();
    Batch::new(fresh_id(), counts).expect("a valid batch")
}

fn hour_at(second: i64) -> Hour {
    Hour::starting_at(Timestamp::from_second(second).unwrap()).unwrap()
}

fn query(s: &Scope, range: DateRange, zone: &Zone, by: &[Dimension]) -> TotalsQuery {
    TotalsQuery::new(range, by)
        .unwrap()
        .endpoint(s.endpoint(Method::Get, "/z"))
        .in_zone(zone.clone())
}

async fn roll_up_days_of(counter: &dyn Counter, seconds: &[i64]) {
    for &at in seconds {
        counter.rollup(Zone::UTC.day_of(at)).await.unwrap();
    }
}

/// On each zone's DST days (23 and 25 hours in Europe/Zurich and America/New_York,
/// 23.5 and 24.5 on Australia/Lord_Howe) and on a day of Asia/Kolkata (+05:30) and
/// Asia/Kathmandu (+05:45), the counts just before, at the start of, at the last
/// second of, and at the end of the local day land on the day and hour holding them:
/// live, after the rollup (from the quarters), and from the days kept for the zone.
pub async fn local_days_are_exact_in_every_zone(counter: &dyn Counter) {
    for (name, date, hours) in [
        ("Europe/Zurich", "2026-03-29", 23.0),
        ("Europe/Zurich", "2026-10-25", 25.0),
        ("America/New_York", "2026-03-08", 23.0),
        ("America/New_York", "2026-11-01", 25.0),
        ("Asia/Kolkata", "2026-06-15", 24.0),
        ("Asia/Kathmandu", "2026-06-15", 24.0),
        ("Australia/Lord_Howe", "2026-04-05", 24.5),
        ("Australia/Lord_Howe", "2026-10-04", 23.5),
    ] {
        let zone = Zone::new(name).unwrap();
        let d = day(date);
        let (start, end) = (zone.start(d), zone.end(d));
        assert_eq!(
            (end - start) as f64 / 3600.0,
            hours,
            "{name} {date}: its length"
        );
        let s = Scope::new();
        let counts = [(start - 1, 1), (start, 10), (end - 1, 100), (end, 1000)];
        counter.write(&batch_at(&s, &counts)).await.unwrap();
        let (before, after) = (d.prev().unwrap(), d.next().unwrap());
        let days = query(
            &s,
            DateRange::new(before, after).unwrap(),
            &zone,
            &[Dimension::Day],
        );
        let hours_of_day = query(&s, DateRange::day(d), &zone, &[Dimension::Hour]);
        let want_days = [
            GroupedTotal::new(1).with_day(before),
            GroupedTotal::new(110).with_day(d),
            GroupedTotal::new(1000).with_day(after),
        ];
        let last_hour = zone.hour_of(end - 1);
        let want_hours = [
            GroupedTotal::new(10).with_hour(hour_at(start)),
            GroupedTotal::new(100).with_hour(last_hour),
        ];
        assert!(
            last_hour.unix_second() >= end - 3600 && last_hour.unix_second() > start,
            "{name} {date}: the last hour"
        );
        // By the day and hour: always from the quarters (or raw), whatever days are
        // kept, so the quarters' days are checked in every phase.
        let days_and_hours = query(
            &s,
            DateRange::new(before, after).unwrap(),
            &zone,
            &[Dimension::Day, Dimension::Hour],
        );
        let check = |phase: &'static str| {
            let (days, hours_of_day) = (days.clone(), hours_of_day.clone());
            let days_and_hours = days_and_hours.clone();
            let zone = &zone;
            async move {
                let got = counter.totals(&days).await.unwrap();
                assert_eq!(got, want_days, "{name} {date}, {phase}: days");
                let got = counter.totals(&hours_of_day).await.unwrap();
                assert_eq!(got, want_hours, "{name} {date}, {phase}: hours");
                let mut per_day = crate::model::Sums::default();
                for row in counter.totals(&days_and_hours).await.unwrap() {
                    let hour = row.hour.expect("grouped by hour").unix_second();
                    assert_eq!(row.day, Some(zone.day_of(hour)), "{name} {date}, {phase}");
                    per_day.add(GroupedTotal::new(0).with_day(row.day.unwrap()), row.total);
                }
                assert_eq!(per_day.rows(), want_days, "{name} {date}, {phase}: by hour");
            }
        };
        check("live").await;
        roll_up_days_of(counter, &counts.map(|(at, _)| at)).await;
        check("rolled up, by the quarter").await;
        counter.keep_zone_days(&zone).await.unwrap();
        let kept = counter.kept().await.unwrap();
        assert!(
            kept.zone_days.iter().any(|(z, _)| *z == zone),
            "{name}: kept after keep_zone_days: {kept:?}"
        );
        check("from the zone's days").await;
    }
}

/// Counts grouped by the hour, in UTC and in Asia/Kolkata, are the same live and after
/// the rollup, and a count written after the rollup is added to its hour.
pub async fn hours_are_kept_before_and_after_a_rollup(counter: &dyn Counter) {
    let s = Scope::new();
    let at = |text: &str| text.parse::<Timestamp>().unwrap().as_second();
    let counts = [
        (at("2026-02-10T00:00:00Z"), 1),
        (at("2026-02-10T00:29:59Z"), 2),
        (at("2026-02-10T00:30:00Z"), 4),
        (at("2026-02-10T13:59:00Z"), 8),
        (at("2026-02-10T23:59:59Z"), 16),
    ];
    counter.write(&batch_at(&s, &counts)).await.unwrap();
    let d = day("2026-02-10");
    let kolkata = Zone::new("Asia/Kolkata").unwrap();
    let hour = |text: &str| Hour::starting_at(text.parse().unwrap()).unwrap();
    let utc = query(&s, DateRange::day(d), &Zone::UTC, &[Dimension::Hour]);
    let local = query(
        &s,
        DateRange::new(d, d.next().unwrap()).unwrap(),
        &kolkata,
        &[Dimension::Day, Dimension::Hour],
    );
    let want_utc = |late: u64| {
        vec![
            GroupedTotal::new(7).with_hour(hour("2026-02-10T00:00:00Z")),
            GroupedTotal::new(8 + late).with_hour(hour("2026-02-10T13:00:00Z")),
            GroupedTotal::new(16).with_hour(hour("2026-02-10T23:00:00Z")),
        ]
    };
    // In Kolkata: 05:30, 05:59:59 and 06:00 local fall in 05:00 and 06:00 (both from
    // 23:30Z and 00:30Z); 19:29 in 19:00; 05:29:59 the next day in 05:00 of the 11th.
    let want_local = |late: u64| {
        vec![
            GroupedTotal::new(3)
                .with_day(d)
                .with_hour(hour("2026-02-09T23:30:00Z")),
            GroupedTotal::new(4)
                .with_day(d)
                .with_hour(hour("2026-02-10T00:30:00Z")),
            GroupedTotal::new(8 + late)
                .with_day(d)
                .with_hour(hour("2026-02-10T13:30:00Z")),
            GroupedTotal::new(16)
                .with_day(d.next().unwrap())
                .with_hour(hour("2026-02-10T23:30:00Z")),
        ]
    };
    assert_eq!(
        counter.totals(&utc).await.unwrap(),
        want_utc(0),
        "live, UTC"
    );
    assert_eq!(
        counter.totals(&local).await.unwrap(),
        want_local(0),
        "live, Kolkata"
    );
    counter.rollup(d).await.unwrap();
    assert_eq!(
        counter.totals(&utc).await.unwrap(),
        want_utc(0),
        "rolled up, UTC"
    );
    assert_eq!(
        counter.totals(&local).await.unwrap(),
        want_local(0),
        "rolled up, Kolkata"
    );
    counter
        .write(&batch_at(&s, &[(at("2026-02-10T13:45:00Z"), 32)]))
        .await
        .unwrap();
    assert_eq!(
        counter.totals(&utc).await.unwrap(),
        want_utc(32),
        "a late count, UTC"
    );
    counter.rollup(d).await.unwrap();
    assert_eq!(
        counter.totals(&local).await.unwrap(),
        want_local(32),
        "a late count rolled up, Kolkata"
    );
}

/// The cycles anchored on the 31st, in America/New_York, across February 2024:
/// January 31 to February 28, February 29 to March 30, from March 31.
pub async fn a_cycle_on_the_31st_crosses_a_leap_february(counter: &dyn Counter) {
    let s = Scope::new();
    let zone = Zone::new("America/New_York").unwrap();
    // Late in each local day, when it is already the next day in UTC.
    let late = |date: &str| zone.end(day(date)) - 60;
    let dates = [
        ("2024-01-30", 1),
        ("2024-01-31", 2),
        ("2024-02-28", 4),
        ("2024-02-29", 8),
        ("2024-03-30", 16),
        ("2024-03-31", 32),
    ];
    let counts: Vec<(i64, u64)> = dates.iter().map(|&(d, n)| (late(d), n)).collect();
    counter.write(&batch_at(&s, &counts)).await.unwrap();
    let total = |period: Period| {
        let query = TotalsQuery::for_period(period, &[Dimension::Endpoint])
            .unwrap()
            .endpoint(s.endpoint(Method::Get, "/z"))
            .in_zone(zone.clone());
        async move {
            let rows = counter.totals(&query).await.unwrap();
            rows.first().map_or(0, |r| r.total)
        }
    };
    let check = |phase: &'static str| async move {
        let january = Period::cycle(31, 2024, 1).unwrap();
        assert_eq!(
            total(january).await,
            2 + 4,
            "{phase}: the cycle from 2024-01-31"
        );
        let february = Period::cycle_containing(31, day("2024-03-30")).unwrap();
        assert_eq!(february, Period::cycle(31, 2024, 2).unwrap());
        assert_eq!(
            total(february).await,
            8 + 16,
            "{phase}: the cycle from 2024-02-29"
        );
        let march = Period::cycle(31, 2024, 4).unwrap().cycles_back(1).unwrap();
        assert_eq!(total(march).await, 32, "{phase}: the cycle from 2024-03-31");
    };
    check("live").await;
    roll_up_days_of(counter, &counts.iter().map(|c| c.0).collect::<Vec<_>>()).await;
    check("rolled up").await;
}

/// Once the quarters before 1900-01-01 are forgotten, a report by the hour, or by the
/// day in a zone whose days are not kept, over 1899 is refused naming the retention;
/// by the day in UTC it still answers, and hours from 1900-01-01 on too.
pub async fn hours_past_the_retention_are_refused(counter: &dyn Counter) {
    let s = Scope::new();
    let at = |text: &str| text.parse::<Timestamp>().unwrap().as_second();
    let (old, kept) = (at("1899-06-01T12:00:00Z"), at("1900-01-02T12:00:00Z"));
    counter
        .write(&batch_at(&s, &[(old, 3), (kept, 5)]))
        .await
        .unwrap();
    roll_up_days_of(counter, &[old, kept]).await;
    counter
        .forget_quarters_before(day("1900-01-01"))
        .await
        .unwrap();
    let from = counter.kept().await.unwrap().quarters_from;
    assert!(
        from.is_some_and(|from| from >= day("1900-01-01")),
        "quarters kept from {from:?}"
    );
    let june = DateRange::day(day("1899-06-01"));
    // America/Chicago has been on whole hours since 1883; no clause keeps its days.
    let chicago = Zone::new("America/Chicago").unwrap();
    let kept_from = format!("kept from {} on", from.unwrap());
    for refused in [
        query(&s, june, &Zone::UTC, &[Dimension::Hour]),
        query(&s, june, &chicago, &[Dimension::Day]),
    ] {
        // Through a count server the field's name is in the message only.
        let error = counter.totals(&refused).await.unwrap_err();
        if let Error::InvalidInput { field, .. } = &error {
            assert_eq!(*field, "range");
        }
        let message = error.to_string();
        assert!(
            message.contains("no longer kept") && message.contains(&kept_from),
            "a report past the retention: {message}"
        );
    }
    let days = query(&s, june, &Zone::UTC, &[Dimension::Day]);
    assert_eq!(
        counter.totals(&days).await.unwrap(),
        [GroupedTotal::new(3).with_day(day("1899-06-01"))]
    );
    let hours = query(
        &s,
        DateRange::day(day("1900-01-02")),
        &Zone::UTC,
        &[Dimension::Hour],
    );
    assert_eq!(
        counter.totals(&hours).await.unwrap(),
        [GroupedTotal::new(5).with_hour(hour_at(kept))]
    );
}
