//! The dashboard in a real browser: headless Chromium over WebDriver against a
//! spawned `count-server` holding known counts. The page loads without console
//! errors, its chart and table show the known totals, changing the period changes
//! them, and a server with a token asks for it and refuses a wrong one clearly.
//!
//! Needs Debian's `chromium` and `chromium-driver`; skips without them unless `CI`
//! is set. A screenshot of each test is left under `target/tmp/browser/`.

#[path = "browser/server.rs"]
mod server;
#[path = "browser/webdriver.rs"]
mod webdriver;

use std::collections::BTreeMap;
use std::time::Duration;

use count_core::{
    Batch, BatchId, BucketCount, CountKey, Counter, DateRange, Day, Dimension, Endpoint, Method,
    Path, TotalsQuery, Zone,
};
use serde_json::{Value, json};
use server::{Known, days_before, expected, serving_known_counts, thousands};
use webdriver::Browser;

/// Long enough for a loaded CI machine; the page itself answers in milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);

/// The health badge says the backend answered `/readyz`.
const HEALTHY: &str = "document.getElementById('health').dataset.health === 'up'";

/// Waits until the page has loaded the range `from..=to` (in UTC, the browser's zone
/// here) and says `ready`.
async fn wait_ready(browser: &Browser, from: Day, to: Day) {
    wait_ready_in(browser, from, to, "UTC").await;
}

/// Waits until the page has loaded the range `from..=to` in `zone` and says `ready`.
async fn wait_ready_in(browser: &Browser, from: Day, to: Day, zone: &str) {
    let hash = format!("#from={from}&to={to}&tz={}", zone.replace('/', "%2F"));
    browser
        .wait_for(
            &format!(
                "location.hash === '{hash}' && document.getElementById('status').textContent === 'ready'"
            ),
            &format!("the page to load {from} to {to}"),
            PATIENCE,
        )
        .await;
}

/// Asserts that the tiles, the table and the chart show the totals of `counts` over
/// `from..=to`.
async fn assert_shows(browser: &Browser, counts: &[Known], from: Day, to: Day) {
    let range = DateRange::new(from, to).unwrap();
    let per_endpoint = expected(
        counts,
        &TotalsQuery::new(range, &[Dimension::Endpoint]).unwrap(),
    );
    let total: u64 = per_endpoint.iter().map(|r| r.total).sum();
    let shown = browser
        .js(
            "return document.getElementById('total-requests').textContent",
            vec![],
        )
        .await;
    assert_eq!(
        shown,
        json!(thousands(total)),
        "total requests {from}..{to}"
    );

    // The table: one row per endpoint, each with its total.
    let rows = browser
        .js(
            "return [...document.querySelectorAll('#endpoint-table tr[data-method][data-path]')]
                .map((r) => [r.dataset.method, r.dataset.path, r.querySelector('td.total').textContent]);",
            vec![],
        )
        .await;
    let mut rows: Vec<(String, String, String)> = serde_json::from_value(rows).unwrap();
    rows.sort();
    let mut want: Vec<(String, String, String)> = per_endpoint
        .iter()
        .map(|r| {
            let e = r.endpoint.unwrap();
            (
                e.method.to_string(),
                e.path.as_str().to_owned(),
                thousands(r.total),
            )
        })
        .collect();
    want.sort();
    assert_eq!(rows, want, "endpoint table {from}..{to}");

    // The chart: every day of the range, its bars adding up to the day's total, and
    // each endpoint's own series (the busiest ones) matching that endpoint's days.
    let bars = browser
        .js(
            "return [...document.querySelectorAll('#chart rect[data-day][data-series][data-value]')]
                .map((r) => [r.dataset.day, r.dataset.series, Number(r.dataset.value)]);",
            vec![],
        )
        .await;
    let bars: Vec<(String, String, u64)> = serde_json::from_value(bars).unwrap();
    let mut per_day = BTreeMap::<String, u64>::new();
    let mut per_series = BTreeMap::<(String, String), u64>::new();
    for (day, series, value) in &bars {
        *per_day.entry(day.clone()).or_default() += value;
        *per_series.entry((series.clone(), day.clone())).or_default() += value;
    }
    let by_day = expected(counts, &TotalsQuery::new(range, &[Dimension::Day]).unwrap());
    let mut want_days: BTreeMap<String, u64> = range.days().map(|d| (d.to_string(), 0)).collect();
    for row in &by_day {
        want_days.insert(row.day.unwrap().to_string(), row.total);
    }
    assert_eq!(per_day, want_days, "chart days {from}..{to}");
    let by_day_and_endpoint = expected(
        counts,
        &TotalsQuery::new(range, &[Dimension::Day, Dimension::Endpoint]).unwrap(),
    );
    let mut endpoint_series = 0;
    for row in by_day_and_endpoint {
        let key = format!("{}", row.endpoint.unwrap());
        if per_series.keys().any(|(series, _)| *series == key) {
            let value = per_series.get(&(key.clone(), row.day.unwrap().to_string()));
            assert_eq!(
                value,
                Some(&row.total),
                "{key} on {} in the chart",
                row.day.unwrap()
            );
            endpoint_series += 1;
        }
    }
    assert!(
        endpoint_series > 0,
        "the chart names the busiest endpoints: {bars:?}"
    );
}

/// The console's messages that are errors.
async fn console_errors(browser: &Browser) -> Vec<String> {
    browser
        .console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .map(|(_, message)| message)
        .collect()
}

#[tokio::test]
async fn the_dashboard_shows_the_known_totals_and_follows_the_period() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (spawned, today, counts) = serving_known_counts(&[], None).await;

    // First load: the last 30 days.
    browser.goto(&format!("{}/", spawned.url())).await;
    let month = days_before(today, 29);
    wait_ready(&browser, month, today).await;
    assert_shows(&browser, &counts, month, today).await;
    browser
        .wait_for(HEALTHY, "the backend shown healthy", PATIENCE)
        .await;
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "console errors on load: {errors:?}");
    let load_ms = browser
        .js(
            "return Number(document.documentElement.dataset.loadMs)",
            vec![],
        )
        .await;
    assert!(
        load_ms.as_f64().is_some_and(|ms| ms > 0.0),
        "loadMs: {load_ms}"
    );

    // A preset: the last 7 days leave out what was counted 10 days ago.
    browser.click("button[data-preset='7d']").await;
    let week = days_before(today, 6);
    wait_ready(&browser, week, today).await;
    assert_shows(&browser, &counts, week, today).await;
    assert_eq!(
        browser.js("return document.querySelector('button[data-preset=\"7d\"]').getAttribute('aria-pressed')", vec![]).await,
        json!("true")
    );

    // A range typed in: one day 40 days ago, when only /health was called.
    let long_ago = days_before(today, 40);
    browser
        .js(
            "document.getElementById('range-from').value = arguments[0];
             document.getElementById('range-to').value = arguments[0];",
            vec![json!(long_ago.to_string())],
        )
        .await;
    browser.click("#apply-range").await;
    wait_ready(&browser, long_ago, long_ago).await;
    assert_shows(&browser, &counts, long_ago, long_ago).await;

    // A range with nothing in it says so instead of showing an empty chart.
    let empty = days_before(today, 100);
    browser
        .goto(&format!("{}/#from={empty}&to={empty}", spawned.url()))
        .await;
    wait_ready(&browser, empty, empty).await;
    let shown: Value = browser
        .js(
            "return [document.getElementById('empty-state').hidden, document.getElementById('total-requests').textContent]",
            vec![],
        )
        .await;
    assert_eq!(shown, json!([false, "0"]));

    // Back to the month for the picture.
    browser
        .goto(&format!("{}/#from={month}&to={today}", spawned.url()))
        .await;
    wait_ready(&browser, month, today).await;
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let picture = browser.screenshot("dashboard").await;
    println!("screenshot: {}", picture.display());
    browser.close().await;
}

/// The bars of the chart, summed per hour (its first instant, in ms): the hours the
/// chart has, and those with requests.
async fn bars_per_hour(browser: &Browser) -> (usize, BTreeMap<i64, u64>) {
    let bars = browser
        .js(
            "return [...document.querySelectorAll('#chart rect[data-hour]')]
                .map((r) => [Number(r.dataset.hour), Number(r.dataset.value)]);",
            vec![],
        )
        .await;
    let bars: Vec<(i64, u64)> = serde_json::from_value(bars).unwrap();
    let mut hours = BTreeMap::<i64, u64>::new();
    for (hour, value) in bars {
        *hours.entry(hour).or_default() += value;
    }
    let slots = hours.len();
    hours.retain(|_, total| *total > 0);
    (slots, hours)
}

/// A day's chart is by the hour, on the chosen zone's clock: a known curve of 24
/// hours in UTC (the browser's zone here); the zone picker moves it to Asia/Kolkata
/// (+05:30), whose day starts at 18:30 UTC the day before, its hours labelled on that
/// clock.
#[tokio::test]
async fn the_hourly_chart_follows_the_zone_picker() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (spawned, today, counts) = serving_known_counts(&[], None).await;
    let day = days_before(today, 1);
    // 1, 2, ..., 24 requests to GET /hourly at ten past each UTC hour of the day.
    let hourly = CountKey::new(Endpoint::new(Method::Get, Path::new("/hourly").unwrap()));
    let curve: Vec<(i64, CountKey, u64)> = (0..24)
        .map(|h| (day.start_second() + h * 3600 + 600, hourly, h as u64 + 1))
        .collect();
    let batch = curve
        .iter()
        .map(|&(at, key, n)| {
            BucketCount::new(
                key,
                count_core::jiff::Timestamp::from_second(at).unwrap(),
                n,
            )
        })
        .collect();
    let id = BatchId {
        writer: count_core::uuid::Uuid::new_v4(),
        seq: 1,
    };
    let client = count_grpc::GrpcCounter::connect(&spawned.url())
        .await
        .unwrap();
    client.write(&Batch::new(id, batch).unwrap()).await.unwrap();
    let everything: Vec<(i64, CountKey, u64)> = counts
        .iter()
        .map(|c| (c.day.start_second(), c.key(), c.n))
        .chain(curve)
        .collect();
    let hours_in = |zone: &str| -> BTreeMap<i64, u64> {
        TotalsQuery::new(DateRange::day(day), &[Dimension::Hour])
            .unwrap()
            .in_zone(Zone::new(zone).unwrap())
            .group(everything.iter().copied())
            .into_iter()
            .map(|row| (row.hour.unwrap().unix_second() * 1000, row.total))
            .collect()
    };

    browser
        .goto(&format!("{}/#from={day}&to={day}", spawned.url()))
        .await;
    wait_ready(&browser, day, day).await;
    let (slots, utc) = bars_per_hour(&browser).await;
    assert_eq!(slots, 24, "a UTC day has 24 hours");
    assert_eq!(utc, hours_in("UTC"), "the hours in UTC");
    assert_eq!(utc.len(), 24, "every hour of the curve: {utc:?}");
    let title = "return document.getElementById('chart-title').textContent";
    assert_eq!(browser.js(title, vec![]).await, json!("Requests per hour"));

    // Chromium lists India's zone under its older name; either is the same zone.
    let kolkata = browser
        .js(
            "const zone = document.getElementById('zone');
             const option = [...zone.options].find((o) => o.value === 'Asia/Kolkata' || o.value === 'Asia/Calcutta');
             zone.value = option.value;
             zone.dispatchEvent(new Event('change'));
             return option.value;",
            vec![],
        )
        .await;
    let name = kolkata.as_str().unwrap().to_owned();
    wait_ready_in(&browser, day, day, &name).await;
    let (slots, kolkata) = bars_per_hour(&browser).await;
    assert_eq!(slots, 24);
    assert_eq!(kolkata, hours_in("Asia/Kolkata"), "the hours in Kolkata");
    assert_ne!(kolkata, utc, "the zone moves the bars");
    // The first hour is 00:00 on Kolkata's clock: 18:30 UTC the day before.
    let first = browser
        .js(
            "const r = document.querySelector('#chart rect[data-hour]');
             return [Number(r.dataset.hour), r.dataset.label, r.dataset.day];",
            vec![],
        )
        .await;
    let start_ms = (day.start_second() - 5 * 3600 - 1800) * 1000;
    assert_eq!(first, json!([start_ms, "00:00", day.to_string()]));
    let label = "return document.getElementById('range-label').textContent";
    let label = browser.js(label, vec![]).await;
    assert!(label.as_str().unwrap().ends_with(&name), "{label}");
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.screenshot("hourly-kolkata").await;
    browser.close().await;
}

#[tokio::test]
async fn a_server_with_a_token_asks_for_it_and_refuses_a_wrong_one() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (spawned, today, counts) =
        serving_known_counts(&[("COUNT_TOKEN", "s3cret")], Some("s3cret")).await;

    browser.goto(&format!("{}/", spawned.url())).await;
    let auth_shown = "!document.getElementById('auth').hidden";
    browser
        .wait_for(auth_shown, "the token form", PATIENCE)
        .await;
    let message = "return document.getElementById('auth-message').textContent";
    assert_eq!(
        browser.js(message, vec![]).await,
        json!("This server needs an access token.")
    );

    browser.type_into("#token-input", "wrong-token").await;
    browser.click("#token-submit").await;
    browser
        .wait_for(
            "document.getElementById('auth-message').classList.contains('refused')",
            "the wrong token refused",
            PATIENCE,
        )
        .await;
    assert_eq!(
        browser.js(message, vec![]).await,
        json!("That token was refused. Check it and try again.")
    );
    assert_eq!(
        browser.js(&format!("return {auth_shown}"), vec![]).await,
        json!(true)
    );
    browser.screenshot("token-refused").await;

    browser.type_into("#token-input", "s3cret").await;
    browser.click("#token-submit").await;
    let month = days_before(today, 29);
    wait_ready(&browser, month, today).await;
    assert_eq!(
        browser.js(&format!("return {auth_shown}"), vec![]).await,
        json!(false)
    );
    assert_shows(&browser, &counts, month, today).await;
    // The backend's health, unknown without the token, is checked again with it.
    browser
        .wait_for(HEALTHY, "the backend shown healthy", PATIENCE)
        .await;
    // The only errors are the refusals the browser reports for the 401 answers.
    for error in console_errors(&browser).await {
        assert!(error.contains("401"), "console error: {error}");
    }
    browser.close().await;
}

/// The limits card: the subjects nearest their limits, used against amount, the one
/// over its limit marked; absent on a server without limits.
#[tokio::test]
async fn the_dashboard_shows_who_is_near_or_over_a_limit() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (spawned, today, _) = serving_known_counts(&[], None).await;
    let client = count_grpc::GrpcCounter::connect(&spawned.url())
        .await
        .unwrap();
    let mut policy = count_core::limits::Policy::default();
    policy.limits.insert(
        "daily".into(),
        count_core::limits::Limit::new(count_core::limits::LimitPeriod::Day, 10),
    );
    policy.plans.insert("free".into(), vec!["daily".into()]);
    for subject in ["near-co", "over-co", "quiet-co"] {
        policy
            .subjects
            .insert(subject.into(), count_core::limits::Assignment::plan("free"));
    }
    count_core::CounterExt::policy(&client).await.unwrap();
    client.replace_policy(0, &policy).await.unwrap();
    let now = count_core::jiff::Timestamp::now();
    let key = |subject: &str| {
        CountKey::of(
            Method::Get,
            Path::new("/limited").unwrap(),
            Some(count_core::Subject::new(subject).unwrap()),
            count_core::Status::http(200).ok(),
        )
    };
    let counts = vec![
        BucketCount::new(key("near-co"), now, 8),
        BucketCount::new(key("over-co"), now, 12),
    ];
    let id = BatchId {
        writer: count_core::uuid::Uuid::new_v4(),
        seq: 1,
    };
    client
        .write(&Batch::new(id, counts).unwrap())
        .await
        .unwrap();

    browser
        .goto(&format!("{}/#from={today}&to={today}", spawned.url()))
        .await;
    wait_ready(&browser, today, today).await;
    let rows = browser
        .js(
            "return [...document.querySelectorAll('#limit-list li')].map((li) =>
               [li.dataset.subject, li.dataset.limit, li.querySelector('.bar-val').textContent,
                li.querySelector('.bar-fill').className]);",
            vec![],
        )
        .await;
    assert_eq!(
        rows,
        json!([
            ["over-co", "daily", "12 / 10", "bar-fill over"],
            ["near-co", "daily", "8 / 10", "bar-fill near"],
            ["quiet-co", "daily", "0 / 10", "bar-fill"],
        ])
    );
    let visible = "return !document.getElementById('limits-card').hidden";
    assert_eq!(browser.js(visible, vec![]).await, json!(true));
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.screenshot("limits").await;
    browser.close().await;
}
