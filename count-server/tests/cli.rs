//! The operator commands, run as an operator runs them: the spawned `count-server`
//! binary against a running server (gRPC), against SQLite files and against a
//! throwaway PostgreSQL; every output format byte for byte, bad arguments and their
//! exit codes, rollups and migrations.

mod common;
#[path = "browser/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;

use count::Migrations;
use count_core::{
    Counter, CounterExt, DateRange, Day, Dimension, Endpoint, Method, Path as RoutePath,
    StatusFilter, Subject, TotalsQuery,
};
use count_grpc::GrpcCounter;
use count_server::backend::{self, Backend};
use count_server::http::{totals_csv, totals_json};
use count_testcluster::TestCluster;
use server::{
    BINARY, Known, Spawned, days_before, expected, known_counts, send, serving_known_counts,
    thousands,
};

/// What one run of a command did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `count-server args...` with `env` and nothing inherited that configures it
/// (the default database file is looked for in an empty directory).
fn cli(args: &[&str], env: &[(&str, &str)]) -> Run {
    run_as(None, args, env)
}

/// [`cli`], as `user` when given (through `runuser`: the tests run as root).
fn run_as(user: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let home = scratch("home");
    let mut command = match user {
        Some(user) => {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", user, "--", BINARY]);
            runuser
        }
        None => Command::new(BINARY),
    };
    command
        .args(args)
        .env_remove("DB_URL")
        .env_remove("COUNT_TOKEN")
        .env_remove("COUNT_SERVER")
        .env_remove("COUNT_DB_PATH")
        .env_remove("COUNT_BACKEND")
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run count-server");
    Run {
        code: output.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 output"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 errors"),
    }
}

/// A new empty directory under cargo's scratch space for this test target.
fn scratch(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `run` ended with `code`; the whole run in the message otherwise.
#[track_caller]
fn assert_exit(run: &Run, code: i32) {
    assert_eq!(run.code, code, "{run:#?}");
}

/// The options of `totals` and the query string of `/api/v1/totals` that ask the
/// same, and the query itself.
struct Ask {
    cli: Vec<String>,
    http: Vec<(String, String)>,
    query: TotalsQuery,
}

impl Ask {
    fn range(from: Day, to: Day, group: &[Dimension]) -> Ask {
        let group_text = group
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Ask {
            cli: vec![
                "--from".into(),
                from.to_string(),
                "--to".into(),
                to.to_string(),
                "--group".into(),
                group_text.clone(),
            ],
            http: vec![
                ("from".into(), from.to_string()),
                ("to".into(), to.to_string()),
                ("group".into(), group_text),
            ],
            query: TotalsQuery::new(DateRange::new(from, to).unwrap(), group).unwrap(),
        }
    }

    fn filter(mut self, name: &str, value: &str) -> Ask {
        self.cli.push(format!("--{name}"));
        self.cli.push(value.to_owned());
        self.http.push((name.to_owned(), value.to_owned()));
        self.query = match name {
            "subject" => self.query.subject(Subject::new(value).unwrap()),
            "status" => self.query.status(value.parse::<StatusFilter>().unwrap()),
            "endpoint" => {
                let (method, path) = value.split_once(' ').unwrap();
                self.query.endpoint(Endpoint::new(
                    method.parse::<Method>().unwrap(),
                    RoutePath::new(path).unwrap(),
                ))
            }
            other => panic!("no filter {other}"),
        };
        self
    }

    /// The days (and hours) of `zone` instead of UTC: `--tz` and `tz=`.
    fn zone(mut self, zone: &str) -> Ask {
        self.cli.extend(["--tz".to_owned(), zone.to_owned()]);
        self.http.push(("tz".to_owned(), zone.to_owned()));
        self.query = self.query.in_zone(count_core::Zone::new(zone).unwrap());
        self
    }

    fn http_path(&self, format: &str) -> String {
        let mut query: Vec<String> = self
            .http
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        if format == "csv" {
            query.push("format=csv".into());
        }
        format!("/api/v1/totals?{}", query.join("&"))
    }

    fn run(&self, format: &str, source: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec!["totals", "--format", format];
        args.extend(self.cli.iter().map(String::as_str));
        args.extend(source);
        cli(&args, env)
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reports over the known counts that together use every grouping and filter.
fn asks(today: Day) -> Vec<Ask> {
    let month_ago = days_before(today, 40);
    vec![
        Ask::range(month_ago, today, &[Dimension::Endpoint]),
        Ask::range(today, today, &[Dimension::Subject, Dimension::Status]),
        Ask::range(month_ago, today, &[Dimension::Day]).filter("status", "5xx"),
        Ask::range(days_before(today, 7), today, &[Dimension::Day])
            .filter("endpoint", "GET /users/{id}"),
        Ask::range(month_ago, today, &[Dimension::Endpoint, Dimension::Status])
            .filter("subject", "acme"),
        Ask::range(month_ago, today, Dimension::ALL.as_slice()).filter("status", "200"),
        // Midnight UTC, when the known counts were made, is the evening before in New
        // York and 05:30 in Kolkata.
        Ask::range(month_ago, today, &[Dimension::Day, Dimension::Endpoint])
            .zone("America/New_York"),
        Ask::range(
            days_before(today, 7),
            today,
            &[Dimension::Day, Dimension::Hour],
        )
        .zone("Asia/Kolkata"),
    ]
}

#[tokio::test]
async fn totals_from_a_running_server_are_what_the_http_api_answers_byte_for_byte() {
    let (spawned, today, counts) = serving_known_counts(&[], None).await;
    let url = spawned.url();
    for ask in asks(today) {
        let rows = expected(&counts, &ask.query);
        assert!(!rows.is_empty(), "{:?} finds the known counts", ask.cli);
        for (format, reference) in [
            ("json", totals_json(&ask.query, &rows)),
            ("csv", totals_csv(&ask.query, &rows)),
        ] {
            let run = ask.run(format, &["--server", &url], &[]);
            assert_exit(&run, 0);
            assert_eq!(run.stdout, reference, "{format} of {:?}", ask.cli);
            let (status, body) = spawned.get(&ask.http_path(format), None);
            assert_eq!(status, 200, "{}", ask.http_path(format));
            assert_eq!(run.stdout, body, "{format} of {:?} beside HTTP", ask.cli);
        }
        let table = ask.run("table", &["--server", &url], &[]);
        assert_exit(&table, 0);
        let total: u64 = rows.iter().map(|r| r.total).sum();
        let last = table.stdout.lines().last().unwrap();
        assert!(
            last.starts_with("TOTAL") && last.ends_with(&thousands(total)),
            "{}",
            table.stdout
        );
    }
    // An empty answer is no failure, in every format.
    let empty = Ask::range(
        days_before(today, 400),
        days_before(today, 390),
        &[Dimension::Endpoint],
    );
    for (format, out) in [("json", "[]"), ("table", "No requests counted from")] {
        let run = empty.run(format, &["--server", &url], &[]);
        assert_exit(&run, 0);
        assert!(run.stdout.starts_with(out), "{run:#?}");
    }
    let csv = empty.run("csv", &["--server", &url], &[]);
    assert_eq!(csv.stdout, totals_csv(&empty.query, &[]));
}

/// Counts on fixed days, for output compared with literal text.
fn fixed_counts() -> Vec<Known> {
    let day = |d| Day::new(2026, 11, d).unwrap();
    let known = |d, method, path, subject, status, n| Known {
        day: day(d),
        method,
        path,
        subject,
        status,
        n,
    };
    vec![
        known(
            1,
            Method::Get,
            "/users/{id}",
            Some("acme"),
            Some(200),
            1_234_567,
        ),
        known(2, Method::Get, "/users/{id}", None, Some(503), 33),
        known(2, Method::Post, "/orders", Some("globex"), Some(201), 4_200),
        known(
            2,
            Method::Grpc,
            "/shop.v1.Cart/Checkout",
            Some("acme"),
            Some(14),
            5,
        ),
    ]
}

#[tokio::test]
async fn a_table_aligns_columns_with_thousands_separators_and_a_total_line() {
    let spawned = Spawned::start(&[], &[("DB_URL", "memory:")]);
    send(
        &GrpcCounter::connect(&spawned.url()).await.unwrap(),
        &fixed_counts(),
    )
    .await;
    let url = spawned.url();
    let run = cli(&["totals", "--month", "2026-11", "--server", &url], &[]);
    assert_exit(&run, 0);
    assert_eq!(
        run.stdout,
        "\
Requests from 2026-11-01 to 2026-11-30 (UTC), by endpoint

METHOD  PATH                     REQUESTS
POST    /orders                     4,200
GRPC    /shop.v1.Cart/Checkout          5
GET     /users/{id}             1,234,600
-----------------------------------------
TOTAL                           1,238,805
"
    );
    let run = cli(
        &[
            "totals",
            "--period",
            "2026-11-02",
            "--group",
            "subject,status",
            "--server",
            &url,
        ],
        &[],
    );
    assert_exit(&run, 0);
    assert_eq!(
        run.stdout,
        "\
Requests on 2026-11-02 (UTC), by subject, status

SUBJECT  STATUS   REQUESTS
(none)   503            33
acme     gRPC 14         5
globex   201         4,200
--------------------------
TOTAL                4,238
"
    );
    let run = cli(
        &[
            "totals",
            "--year",
            "2026",
            "--group",
            "day",
            "--subject",
            "acme",
            "--server",
            &url,
        ],
        &[("COUNT_SERVER", "http://127.0.0.1:1")],
    );
    assert_exit(&run, 0);
    assert_eq!(
        run.stdout,
        "\
Requests from 2026-01-01 to 2026-12-31 (UTC), by day

DAY          REQUESTS
2026-11-01  1,234,567
2026-11-02          5
---------------------
TOTAL       1,234,572
"
    );
}

#[tokio::test]
async fn a_server_with_a_token_refuses_a_missing_or_wrong_one_with_exit_code_5() {
    let spawned = Spawned::start(&[], &[("DB_URL", "memory:"), ("COUNT_TOKEN", "s3cret")]);
    let url = spawned.url();
    let day = ["totals", "--day", "2026-11-02", "--server", &url];
    for env in [&[][..], &[("COUNT_TOKEN", "wrong")][..]] {
        let run = cli(&day, env);
        assert_exit(&run, 5);
        assert!(run.stderr.contains("refused the access token"), "{run:#?}");
    }
    let mut with_flag = day.to_vec();
    with_flag.extend(["--token", "s3cret"]);
    assert_exit(&cli(&with_flag, &[]), 0);
    let run = cli(&day, &[("COUNT_TOKEN", "s3cret")]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, "No requests counted on 2026-11-02 (UTC).\n");
}

#[tokio::test]
async fn an_unreachable_server_exits_1_naming_it() {
    let url = format!("http://127.0.0.1:{}", server::free_port());
    let run = cli(&["totals", "--server", &url], &[]);
    assert_exit(&run, 1);
    assert!(run.stderr.contains(&url), "{run:#?}");
}

#[tokio::test]
async fn an_https_server_is_reached_with_its_ca_certificate() {
    let dir = scratch("tls");
    let (ca, cert, key) = common::certificates(&dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let spawned = Spawned::start(
        &["--tls-cert", cert, "--tls-key", key],
        &[("DB_URL", "memory:")],
    );
    let url = format!("https://localhost:{}", spawned.port);
    let day = ["totals", "--day", "2026-11-02", "--server", &url];
    let mut trusted = day.to_vec();
    trusted.extend(["--ca-cert", ca.to_str().unwrap()]);
    let run = cli(&trusted, &[]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, "No requests counted on 2026-11-02 (UTC).\n");
    // Without the CA the certificate is not trusted: a failure naming the server.
    let run = cli(&day, &[]);
    assert_exit(&run, 1);
    assert!(run.stderr.contains(&url), "{run:#?}");
    let mut missing = day.to_vec();
    missing.extend(["--ca-cert", "/nonexistent/ca.pem"]);
    let run = cli(&missing, &[]);
    assert_exit(&run, 2);
    assert!(run.stderr.contains("/nonexistent/ca.pem"), "{run:#?}");
}

/// A SQLite file at `path` holding `counts`, written through the backend the server
/// uses.
async fn sqlite_file_with(path: &Path, counts: &[Known]) {
    let url = backend::sqlite_url(path).unwrap();
    let opened = backend::open(&url, Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    send(opened.counter().as_ref(), counts).await;
}

#[tokio::test]
async fn totals_straight_from_a_sqlite_file_match_the_reference_in_every_format() {
    let today = Day::today();
    let counts = known_counts(today);
    // Where the server keeps its file by default (under XDG_DATA_HOME).
    let data = scratch("xdg");
    let path = data.join("count").join("count.db");
    sqlite_file_with(&path, &counts).await;
    let db_path = path.to_str().unwrap();
    let url = backend::sqlite_url(&path).unwrap();
    for ask in asks(today) {
        let rows = expected(&counts, &ask.query);
        let json = ask.run("json", &["--db-path", db_path], &[]);
        assert_exit(&json, 0);
        assert_eq!(json.stdout, totals_json(&ask.query, &rows), "{:?}", ask.cli);
        // DB_URL from the environment, as the server reads it.
        let csv = ask.run("csv", &[], &[("DB_URL", &url)]);
        assert_exit(&csv, 0);
        assert_eq!(csv.stdout, totals_csv(&ask.query, &rows), "{:?}", ask.cli);
    }
    // No source named: the file the server counts into by default.
    let ask = &asks(today)[0];
    let rows = expected(&counts, &ask.query);
    let json = ask.run("json", &[], &[("XDG_DATA_HOME", data.to_str().unwrap())]);
    assert_exit(&json, 0);
    assert_eq!(json.stdout, totals_json(&ask.query, &rows));
}

#[tokio::test]
async fn a_read_neither_creates_nor_migrates_a_database() {
    let dir = scratch("missing");
    let missing = dir.join("count.db");
    let run = cli(&["totals", "--db-path", missing.to_str().unwrap()], &[]);
    assert_exit(&run, 3);
    assert!(run.stderr.contains(missing.to_str().unwrap()), "{run:#?}");
    assert!(!missing.exists(), "a read created the file");
    // No source at all: the server's default file, which is not there either.
    let run = cli(&["totals"], &[]);
    assert_exit(&run, 3);
    assert!(run.stderr.contains("--server"), "{run:#?}");

    // An empty SQLite file: no schema. Reads and checks say so; only migrate changes it.
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let empty = empty.to_str().unwrap();
    for args in [
        &["totals", "--db-path", empty][..],
        &["rollup", "--db-path", empty],
        &["migrate", "--check", "--db-path", empty],
    ] {
        let run = cli(args, &[]);
        assert_exit(&run, 4);
        assert!(run.stderr.contains("schema"), "{run:#?}");
    }
    assert_eq!(std::fs::metadata(empty).unwrap().len(), 0, "a check wrote");
    let run = cli(&["migrate", "--db-path", empty], &[]);
    assert_exit(&run, 0);
    assert_eq!(
        run.stdout,
        format!("SQLite file {empty}: migrated; the schema is current (before: no schema).\n")
    );
    let run = cli(&["migrate", "--check", "--db-path", empty], &[]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("the schema is current"), "{run:#?}");
    let run = cli(&["totals", "--db-path", empty, "--format", "json"], &[]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, "[]");
    // `migrate` may create a new file.
    let fresh = dir.join("fresh.db");
    assert_exit(
        &cli(&["migrate", "--db-path", fresh.to_str().unwrap()], &[]),
        0,
    );
    assert!(fresh.is_file());

    // A schema a newer count wrote: every command says so with exit 4, and none
    // suggests a migration this version cannot make.
    rusqlite::Connection::open(&fresh)
        .unwrap()
        .execute(
            "INSERT INTO count_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
            [],
        )
        .unwrap();
    let fresh = fresh.to_str().unwrap();
    for args in [
        &["totals", "--db-path", fresh][..],
        &["migrate", "--check", "--db-path", fresh],
        &["migrate", "--db-path", fresh],
    ] {
        let run = cli(args, &[]);
        assert_exit(&run, 4);
        assert!(run.stderr.contains("newer version of count"), "{run:#?}");
        assert!(!run.stderr.contains("applies the missing"), "{run:#?}");
    }
}

#[tokio::test]
async fn rollup_folds_every_finished_day_or_the_one_named() {
    let today = Day::today();
    let counts = known_counts(today);
    let spawned = Spawned::start(&["--no-rollup"], &[("DB_URL", "memory:")]);
    let url = spawned.url();
    let counter = GrpcCounter::connect(&url).await.unwrap();
    send(&counter, &counts).await;

    let mut finished: Vec<Day> = counts
        .iter()
        .map(|c| c.day)
        .filter(|d| *d < today)
        .collect();
    finished.sort();
    finished.dedup();
    let run = cli(&["rollup", "--server", &url], &[]);
    assert_exit(&run, 0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), finished.len(), "{run:#?}");
    for (line, day) in lines.iter().zip(&finished) {
        let query = TotalsQuery::new(DateRange::day(*day), &[Dimension::Endpoint]).unwrap();
        let rows = expected(&counts, &query);
        let requests: u64 = rows.iter().map(|r| r.total).sum();
        let endpoints = rows.len();
        let plural = if endpoints == 1 { "" } else { "s" };
        assert_eq!(
            *line,
            format!(
                "{day}  rolled up: {} requests, {endpoints} endpoint{plural}",
                thousands(requests)
            )
        );
    }
    assert!(counter.unrolled_days(today).await.unwrap().is_empty());
    let run = cli(&["rollup", "--server", &url], &[]);
    assert_exit(&run, 0);
    assert_eq!(
        run.stdout,
        "No finished day holds counts that are not rolled up.\n"
    );
    // Today, by name; the reports do not change.
    let before = counter.day_totals(today).await.unwrap();
    let run = cli(
        &["rollup", "--day", &today.to_string(), "--server", &url],
        &[],
    );
    assert_exit(&run, 0);
    assert!(
        run.stdout.starts_with(&format!("{today}  rolled up: ")),
        "{run:#?}"
    );
    assert_eq!(counter.day_totals(today).await.unwrap(), before);
}

#[test]
fn bad_arguments_exit_2_naming_the_value_and_the_rule() {
    for (args, says) in [
        (
            &["totals", "--day", "2026-02-30"][..],
            "day must be 1 to 28 in 2026-02",
        ),
        (
            &["totals", "--day", "27.11.2026"],
            "expected a date as YYYY-MM-DD",
        ),
        (&["totals", "--month", "2026"], "expected YYYY-MM"),
        (&["totals", "--month", "2026-13"], "month must be 1 to 12"),
        (&["totals", "--year", "2026-11"], "expected YYYY"),
        (
            &["totals", "--period", "26"],
            "expected a year (YYYY), a month (YYYY-MM), a day",
        ),
        (&["totals", "--from", "2026-11-01"], "--to"),
        (
            &["totals", "--day", "2026-11-01", "--month", "2026-11"],
            "cannot be used with",
        ),
        (
            &["totals", "--day", "2026-11-01", "--to", "2026-11-02"],
            "cannot be used with",
        ),
        (
            &["totals", "--group", "tenant"],
            "expected day, hour, endpoint, subject or status",
        ),
        (
            &["totals", "--tz", "Mars/Olympus"],
            "invalid time zone \"Mars/Olympus\"",
        ),
        (&["totals", "--period", "cycle/0"], "must be 1 to 31"),
        (&["totals", "--status", "600"], "or a class: 1xx"),
        (&["totals", "--status", "6xx"], "or a class: 1xx"),
        (
            &["totals", "--endpoint", "/users"],
            "expected <METHOD> <path>",
        ),
        (
            &["totals", "--endpoint", "FETCH /users"],
            "invalid method \"FETCH\"",
        ),
        (&["totals", "--endpoint", "GET "], "invalid path"),
        (
            &["totals", "--format", "xml"],
            "possible values: table, csv, json",
        ),
        (
            &["rollup", "--day", "yesterday"],
            "expected a date as YYYY-MM-DD",
        ),
        (
            &["migrate", "--server", "http://h:1"],
            "unexpected argument '--server'",
        ),
        (
            &["totals", "--server", "ftp://h", "--day", "2026-11-01"],
            "expected http://host:port",
        ),
        (
            &[
                "totals",
                "--from",
                "2026-11-05",
                "--to",
                "2026-11-01",
                "--db-url",
                "memory:",
            ],
            "--from must be on or before --to",
        ),
        (
            &["totals", "--db-url", "mysql://root:pw@h/x"],
            "expected sqlite:<path>",
        ),
        // One database, by the server's rule: a URL and a file are refused together.
        (
            &["totals", "--db-url", "memory:", "--db-path", "/tmp/x.db"],
            "not both",
        ),
        (
            &[
                "totals",
                "--server",
                "http://h:1/some/path",
                "--day",
                "2026-11-01",
            ],
            "expected http://host:port",
        ),
        (
            &[
                "totals",
                "--server",
                "http://h:1",
                "--token",
                "",
                "--day",
                "2026-11-01",
            ],
            "is empty",
        ),
    ] {
        let run = cli(args, &[]);
        assert_exit(&run, 2);
        assert!(
            run.stderr.contains(says),
            "{args:?} should say {says:?}: {run:#?}"
        );
        assert!(run.stdout.is_empty(), "{run:#?}");
        assert!(
            !run.stderr.contains(":pw@"),
            "a password was shown: {run:#?}"
        );
    }
}

/// An environment holding both DB_URL and COUNT_DB_PATH: the server refuses to start
/// and the commands refuse to run, rather than each picking another database.
#[test]
fn both_database_variables_are_refused_as_the_server_refuses_them() {
    for args in [
        &["totals", "--day", "2026-11-01"][..],
        &["rollup"],
        &["migrate", "--check"],
    ] {
        let run = cli(
            args,
            &[("DB_URL", "memory:"), ("COUNT_DB_PATH", "/tmp/missing.db")],
        );
        assert_exit(&run, 2);
        assert!(run.stderr.contains("not both"), "{run:#?}");
    }
}

/// The CSV of `totals` is the HTTP API's: a cell a spreadsheet would take for a
/// formula starts with a quote.
#[tokio::test]
async fn totals_csv_quotes_cells_a_spreadsheet_would_run() {
    let dir = scratch("formulas");
    let path = dir.join("count.db");
    let url = backend::sqlite_url(&path).unwrap();
    let opened = backend::open(&url, Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    let day = Day::new(2026, 11, 26).unwrap();
    let known = |path, subject, n| Known {
        day,
        method: Method::Get,
        path,
        subject,
        status: None,
        n,
    };
    send(
        opened.counter().as_ref(),
        &[
            known("=cmd|' /C calc'!A0", None, 1),
            known("/ok", Some("@SUM(A1)"), 2),
        ],
    )
    .await;
    let run = cli(
        &[
            "totals",
            "--day",
            &day.to_string(),
            "--group",
            "endpoint,subject",
            "--format",
            "csv",
            "--db-path",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&run, 0);
    assert_eq!(
        run.stdout,
        "method,path,subject,total\r\n\
         GET,/ok,'@SUM(A1),2\r\n\
         GET,'=cmd|' /C calc'!A0,,1\r\n"
    );
}

#[test]
fn help_gives_examples_and_the_exit_codes() {
    for command in ["totals", "rollup", "migrate", "backup"] {
        let run = cli(&[command, "--help"], &[]);
        assert_exit(&run, 0);
        for part in [
            "Examples:",
            &format!("count-server {command} "),
            "Exit codes:",
            "  4  ",
        ] {
            assert!(
                run.stdout.contains(part),
                "{command} --help lacks {part:?}: {}",
                run.stdout
            );
        }
    }
}

#[tokio::test]
async fn totals_rollup_and_migrate_on_postgresql() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    // An empty database: nothing to read, the check names what is missing.
    let url = cluster.fresh_database("cli");
    let run = cli(&["migrate", "--check", "--db-url", &url], &[]);
    assert_exit(&run, 4);
    assert!(run.stderr.contains("count_migrations"), "{run:#?}");
    assert_exit(&cli(&["totals", "--db-url", &url], &[]), 4);

    // A database at the first schema version, as an older count left it.
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let v1 = count::pg::schema::POSTGRES[0];
    // count-pg's default schema is "count".
    let mut sql = String::from(
        "CREATE SCHEMA count; CREATE TABLE count.count_migrations (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());",
    );
    for statement in v1.sql {
        sql.push_str(&statement.replace("{schema}", "count"));
        sql.push(';');
    }
    sql.push_str(&format!(
        "INSERT INTO count.count_migrations (version, name) VALUES ({}, '{}');",
        v1.version, v1.name
    ));
    cluster.psql(database, &sql).unwrap();
    let run = cli(&["migrate", "--check", "--db-url", &url], &[]);
    assert_exit(&run, 4);
    // Every later migration is named as missing, then as applied.
    let missing: Vec<String> = count::pg::schema::POSTGRES[1..]
        .iter()
        .map(|m| format!("{} ({})", m.version, m.name))
        .collect();
    let missing = format!("missing migrations {}", missing.join(", "));
    assert!(run.stderr.contains(&missing), "{run:#?}");
    let run = cli(&["migrate", "--db-url", &url], &[]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains(&format!(
            ": migrated; the schema is current (before: {missing})"
        )),
        "{run:#?}"
    );
    let run = cli(&["migrate", "--check"], &[("DB_URL", &url)]);
    assert_exit(&run, 0);

    // Totals, then a rollup that changes no report.
    let today = Day::today();
    let counts = known_counts(today);
    let opened = backend::open(&url, Backend::Auto, Migrations::Check)
        .await
        .unwrap();
    send(opened.counter().as_ref(), &counts).await;
    let ask = Ask::range(
        days_before(today, 40),
        today,
        &[Dimension::Day, Dimension::Endpoint],
    );
    let rows = expected(&counts, &ask.query);
    let csv = ask.run("csv", &["--db-url", &url, "--backend", "postgres"], &[]);
    assert_exit(&csv, 0);
    assert_eq!(csv.stdout, totals_csv(&ask.query, &rows));
    let run = cli(&["rollup", "--db-url", &url], &[]);
    assert_exit(&run, 0);
    assert!(
        opened
            .counter()
            .unrolled_days(today)
            .await
            .unwrap()
            .is_empty()
    );
    let again = ask.run("csv", &["--db-url", &url], &[]);
    assert_eq!(again.stdout, csv.stdout);
    // A forced backend the database is not.
    let run = cli(&["totals", "--db-url", &url, "--backend", "cockroach"], &[]);
    assert_ne!(run.code, 0, "{run:#?}");
}

/// `path` with `suffix` appended: the `-wal` beside a SQLite database.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A server on the SQLite file `path`, a client of it, today, and the known counts of
/// today sent through it.
async fn a_server_on(path: &Path) -> (Spawned, GrpcCounter, Day, Vec<Known>) {
    let spawned = Spawned::start(&["--db-path", path.to_str().unwrap()], &[]);
    let today = Day::today();
    let counts = known_counts(today);
    let client = GrpcCounter::builder(&spawned.url())
        .connect()
        .await
        .unwrap();
    send(&client, &counts).await;
    (spawned, client, today, counts)
}

/// A server stopped cleanly leaves every count in the database file itself, not in
/// its `-wal`: a plain copy of the file alone holds them.
#[tokio::test]
async fn a_clean_stop_leaves_every_count_in_the_sqlite_file_itself() {
    let dir = scratch("stop");
    let path = dir.join("count.db");
    let (spawned, client, today, counts) = a_server_on(&path).await;
    drop(client);
    spawned.stop();
    let wal = beside(&path, "-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "counts left in {}",
        wal.display()
    );
    let copy = dir.join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let ask = &asks(today)[0];
    let run = ask.run("json", &["--db-path", copy.to_str().unwrap()], &[]);
    assert_exit(&run, 0);
    assert_eq!(
        run.stdout,
        totals_json(&ask.query, &expected(&counts, &ask.query))
    );
}

/// Whether the tests run as root (then permissions stop no one, and a read-only
/// test runs the binary as `nobody`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Reading needs no write access: as a user who may read a SQLite file but not
/// write it or its directory, `totals` and `migrate --check` work, with or without
/// the `-wal` and `-shm` a server leaves, and nothing is changed or created.
#[tokio::test]
async fn totals_read_a_sqlite_file_the_user_may_not_write() {
    if !is_root() {
        count_testcluster::skip("needs root, to run count-server as nobody (runuser)");
        return;
    }
    let today = Day::today();
    let counts = known_counts(today);
    let dir = scratch("read-only");
    let path = dir.join("count.db");
    let url = backend::sqlite_url(&path).unwrap();
    let opened = backend::open(&url, Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    send(opened.counter().as_ref(), &counts).await;
    opened.stop().await.unwrap();
    // Root's, as a server running as root leaves them: the directory 0755, the files
    // 0644.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = path.to_str().unwrap();
    let ask = &asks(today)[0];
    let reference = totals_json(&ask.query, &expected(&counts, &ask.query));
    let mut running = Some(opened);
    for server_running in [true, false] {
        if !server_running {
            // Stopped: the writer, closing last, removes the -wal and the -shm.
            drop(running.take());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while beside(&path, "-wal").exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        for file in [path.clone(), beside(&path, "-wal"), beside(&path, "-shm")] {
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        let before = std::fs::read(&path).unwrap();
        let mut args = vec!["totals", "--db-path", db, "--format", "json"];
        args.extend(ask.cli.iter().map(String::as_str));
        let run = run_as(Some("nobody"), &args, &[]);
        assert_exit(&run, 0);
        assert_eq!(run.stdout, reference, "server running: {server_running}");
        let check = ["migrate", "--check", "--db-path", db];
        assert_exit(&run_as(Some("nobody"), &check, &[]), 0);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(beside(&path, "-wal").exists(), server_running);
        assert_eq!(beside(&path, "-shm").exists(), server_running);
    }
}

/// `--db-url sqlite:FILE` and `--db-path FILE` are one source: `migrate` creates a
/// missing file either way, and a read or a check of a missing file exits 3 either
/// way.
#[test]
fn a_sqlite_file_named_by_url_or_by_path_is_one_source() {
    let dir = scratch("spellings");
    for (n, spelling) in ["url", "path"].into_iter().enumerate() {
        let path = dir.join(format!("new-{n}.db"));
        let url = format!("sqlite:{}", path.display());
        let source = |args: &[&'static str]| -> Vec<String> {
            let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            match spelling {
                "url" => all.extend(["--db-url".to_owned(), url.clone()]),
                _ => all.extend(["--db-path".to_owned(), path.display().to_string()]),
            }
            all
        };
        let run_with = |args: &[&'static str]| {
            let all = source(args);
            cli(&all.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        };
        for args in [&["migrate", "--check"][..], &["totals"], &["rollup"]] {
            let run = run_with(args);
            assert_exit(&run, 3);
            assert!(
                run.stderr.contains(path.to_str().unwrap()),
                "{spelling}: {run:#?}"
            );
            assert!(!path.exists(), "{spelling}: {args:?} created the file");
        }
        let run = run_with(&["migrate"]);
        assert_exit(&run, 0);
        assert!(
            path.is_file(),
            "{spelling}: migrate did not create the file"
        );
        assert_exit(&run_with(&["migrate", "--check"]), 0);
        assert_exit(&run_with(&["totals"]), 0);
    }
}

/// `count-server backup` copies a database a server is running on, whole; refuses
/// to overwrite without --force, and a source that is not SQLite.
#[tokio::test]
async fn backup_copies_a_running_servers_database_whole() {
    let dir = scratch("backup");
    let path = dir.join("count.db");
    let (spawned, client, today, counts) = a_server_on(&path).await;

    let dest = dir.join("backup.db");
    let (db, to) = (path.to_str().unwrap(), dest.to_str().unwrap());
    let run = cli(&["backup", "--db-path", db, to], &[]);
    assert_exit(&run, 0);
    assert_eq!(
        run.stdout,
        format!("SQLite file {db}: backed up into {to}.\n")
    );
    let ask = &asks(today)[0];
    let reference = totals_json(&ask.query, &expected(&counts, &ask.query));
    let mut totals = vec!["totals", "--db-path", to, "--format", "json"];
    totals.extend(ask.cli.iter().map(String::as_str));
    let run = cli(&totals, &[]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, reference);

    let run = cli(&["backup", "--db-url", &format!("sqlite:{db}"), to], &[]);
    assert_exit(&run, 2);
    assert!(
        run.stderr.contains(to) && run.stderr.contains("exists"),
        "{run:#?}"
    );
    send(&client, &counts).await;
    assert_exit(&cli(&["backup", "--force", "--db-path", db, to], &[]), 0);
    let run = cli(&totals, &[]);
    assert_exit(&run, 0);
    assert_ne!(run.stdout, reference, "--force wrote the new counts");
    // Never over the running database itself, its log or its index.
    for own in [db.to_owned(), format!("{db}-wal"), format!("{db}-shm")] {
        let run = cli(&["backup", "--force", "--db-path", db, &own], &[]);
        assert_exit(&run, 2);
        assert!(run.stderr.contains("is the database's own"), "{run:#?}");
    }
    send(&client, &counts).await;
    drop(client);
    spawned.stop();

    let run = cli(&["backup", "--db-url", "memory:", to], &[]);
    assert_exit(&run, 2);
    assert!(run.stderr.contains("is not SQLite"), "{run:#?}");
    let missing = dir.join("missing.db");
    let run = cli(&["backup", "--db-path", missing.to_str().unwrap(), to], &[]);
    assert_exit(&run, 3);
}

/// `count-server limits`: limits, plans and subjects' plans set and read back from a
/// SQLite file; bad values refused (exit 2) naming them; nothing to remove is exit 3.
#[test]
fn limits_are_managed_from_the_command_line() {
    let dir = scratch("limits");
    let db = dir.join("count.db");
    let db = db.to_str().unwrap();
    let migrated = cli(&["migrate", "--db-path", db], &[]);
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    let ok = |args: &[&str]| {
        let mut all = vec!["limits"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--db-path", db]);
        let run = cli(&all, &[]);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        run.stdout
    };
    ok(&[
        "set-limit",
        "free-daily",
        "--period",
        "day",
        "--amount",
        "1000",
        "--zone",
        "Europe/Zurich",
    ]);
    ok(&[
        "set-limit",
        "pro-monthly",
        "--period",
        "cycle/15",
        "--amount",
        "3000000",
        "--status",
        "2xx",
        "--soft",
        "--threshold",
        "50%",
        "--threshold",
        "2500000",
    ]);
    ok(&["set-plan", "free", "free-daily"]);
    ok(&["set-plan", "pro", "pro-monthly"]);
    let assigned = ok(&["assign", "acme", "pro", "--override", "pro-monthly=5000000"]);
    assert_eq!(
        assigned,
        "policy version 5: 2 limits, 2 plans, 1 subject on plans\n"
    );
    let shown: serde_json::Value = serde_json::from_str(&ok(&["show"])).unwrap();
    assert_eq!(shown["limits"]["free-daily"]["zone"], "Europe/Zurich");
    assert_eq!(shown["limits"]["pro-monthly"]["period"], "cycle/15");
    assert_eq!(shown["limits"]["pro-monthly"]["hard"], false);
    assert_eq!(
        shown["limits"]["pro-monthly"]["thresholds"],
        serde_json::json!(["50%", 2500000])
    );
    assert_eq!(
        shown["subjects"]["acme"]["overrides"]["pro-monthly"],
        5_000_000
    );
    let usage = ok(&["usage"]);
    assert!(usage.starts_with("SUBJECT"), "{usage}");
    assert!(
        usage.contains("acme") && usage.contains("5,000,000"),
        "{usage}"
    );

    let refused = |args: &[&str], code: i32, says: &str| {
        let mut all = vec!["limits"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--db-path", db]);
        let run = cli(&all, &[]);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    };
    refused(
        &["set-limit", "x", "--period", "fortnight", "--amount", "1"],
        2,
        "fortnight",
    );
    refused(
        &[
            "set-limit",
            "x",
            "--period",
            "day",
            "--amount",
            "1",
            "--zone",
            "Mars/Olympus",
        ],
        2,
        "Mars/Olympus",
    );
    refused(
        &[
            "set-limit",
            "x",
            "--period",
            "day",
            "--amount",
            "1",
            "--status",
            "404",
        ],
        2,
        "classes of statuses",
    );
    refused(
        &["remove-limit", "free-daily"],
        2,
        "names a limit that does not exist",
    );
    refused(&["assign", "globex", "gold"], 2, "invalid plan \"gold\"");
    refused(
        &["assign", "globex", "free", "--override", "free-daily"],
        2,
        "LIMIT=AMOUNT",
    );
    refused(&["unassign", "globex"], 3, "globex");
    ok(&["unassign", "acme"]);
    assert_eq!(ok(&["usage"]), "No subject is on a plan with limits.\n");
}
