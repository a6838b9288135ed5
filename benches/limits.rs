//! Limits on the hot path, in one run:
//!
//! - `limits_layer_adds`: what `CountLayer` with a subject adds, without and with a
//!   limit on that subject (and the identity layer for reference), each paired
//!   against the bare router as the `layer` bench pairs them (blocks of requests
//!   alternating; only the difference kept). The target: the limited layer adds at
//!   most 1.5× what the unlimited one adds, both over the identity layer.
//! - `admission_{1,2}-thread`: the admission check alone, `Limiter::admit_now` and
//!   its ticket settled, beside `governor`'s keyed limiter (`check_key`), over the
//!   same 1,024 subjects in memory. The target: no slower on one thread, faster on two.
//! - `lease round trips`: one replica admitting a steady 10,000 requests a second for
//!   10 s; the round trips to the ledger, per 1,000,000 admitted (printed, and
//!   written to `target/criterion/limits_leases.json`).
//!
//! `cargo bench -p count-benches --bench limits`, then `python3 benches/report.py`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;

use count_core::layer::CountLayer;
use count_core::limits::{
    Admission, Assignment, Limit, LimitPeriod, Limiter, LimiterSettings, MAX_AMOUNT, Policy,
};
use count_core::{CountQueue, Counter, Method, Status, Subject};
use count_memory::MemoryCounter;

/// Requests per block of a pair.
const PAIR_BLOCK: u64 = 1024;
/// Subjects the admission benches cycle through.
const SUBJECTS: usize = 1024;

fn router() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/health", get(|| async { "ok" }))
}

async fn request_through(app: &Router) {
    let request = Request::get("/users/42")
        .header("x-api-key", "acme")
        .body(Body::empty())
        .unwrap();
    std::hint::black_box(app.clone().oneshot(request).await.unwrap());
}

static API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

fn api_key(request: &Request<Body>) -> Option<Subject> {
    let key = request.headers().get(&API_KEY)?.to_str().ok()?;
    Subject::new(key).ok()
}

fn subject_name(i: usize) -> String {
    format!("bench-subject-{i}")
}

/// A policy of one daily limit, never reached, for `acme` and the bench subjects.
fn policy() -> Policy {
    let mut policy = Policy::default();
    policy
        .limits
        .insert("daily".into(), Limit::new(LimitPeriod::Day, MAX_AMOUNT));
    policy.plans.insert("plan".into(), vec!["daily".into()]);
    policy
        .subjects
        .insert("acme".into(), Assignment::plan("plan"));
    for i in 0..SUBJECTS {
        policy
            .subjects
            .insert(subject_name(i), Assignment::plan("plan"));
    }
    policy
}

fn bench(c: &mut Criterion) {
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone())
        .runtime(background.handle().clone())
        .lane_capacity(1 << 16)
        .build()
        .unwrap();
    let limiter = background.block_on(async {
        counter.replace_policy(0, &policy()).await.unwrap();
        let counter: Arc<dyn Counter> = counter.clone();
        Limiter::start(counter, LimiterSettings::default())
            .await
            .unwrap()
    });
    let apps = [
        ("no_layer", router().with_state(())),
        (
            "identity_layer",
            router()
                .layer(tower::layer::util::Identity::new())
                .with_state(()),
        ),
        (
            "count_layer_subject",
            router()
                .layer(CountLayer::new(queue.clone()).subject(api_key))
                .with_state(()),
        ),
        (
            "count_layer_subject_limits_no_plan",
            router()
                .layer(
                    CountLayer::new(queue.clone())
                        .subject(|_: &Request<Body>| Subject::new("no-plan").ok())
                        .limits(limiter.clone()),
                )
                .with_state(()),
        ),
        (
            "count_layer_subject_limited",
            router()
                .layer(
                    CountLayer::new(queue.clone())
                        .subject(api_key)
                        .limits(limiter.clone()),
                )
                .with_state(()),
        ),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The subject's first request waits for its lease: take it before timing.
    runtime.block_on(request_through(&apps[4].1));

    let mut group = c.benchmark_group("limits_layer_adds");
    group.measurement_time(Duration::from_secs(6));
    group.sample_size(60);
    let bare = &apps[0].1;
    for (name, app) in &apps[1..] {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut added = Duration::ZERO;
                    let mut saved = Duration::ZERO;
                    for _ in 0..iters.div_ceil(PAIR_BLOCK) {
                        let start = Instant::now();
                        for _ in 0..PAIR_BLOCK {
                            request_through(bare).await;
                        }
                        let middle = Instant::now();
                        for _ in 0..PAIR_BLOCK {
                            request_through(app).await;
                        }
                        let end = Instant::now();
                        let (without, with) = (middle - start, end - middle);
                        added += with.saturating_sub(without);
                        saved += without.saturating_sub(with);
                    }
                    added
                        .saturating_sub(saved)
                        .max(Duration::from_nanos(1))
                        .mul_f64(iters as f64 / (iters.div_ceil(PAIR_BLOCK) * PAIR_BLOCK) as f64)
                })
            })
        });
    }
    group.finish();
    eprintln!("after the layer: {:?}", limiter.stats());

    admission(c, &limiter, &background);
    lease_round_trips(&background);
    let stats = queue.stats();
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(limiter.stats().refused, 0, "{:?}", limiter.stats());
}

/// `Limiter::admit_now` and governor's keyed limiter, over the same subjects, on 1
/// and 2 threads (each thread its own half of the operations, and its own subjects).
fn admission(c: &mut Criterion, limiter: &Limiter, background: &tokio::runtime::Runtime) {
    let subjects: Arc<Vec<Subject>> = Arc::new(
        (0..SUBJECTS)
            .map(|i| Subject::new(&subject_name(i)).unwrap())
            .collect(),
    );
    // Every subject's first lease, before timing.
    background.block_on(async {
        for subject in subjects.iter() {
            if let Admission::Admitted(ticket) = limiter
                .admit(Some(*subject), Method::Get, "/users/{id}")
                .await
            {
                limiter.settle(ticket, Status::http(200).ok());
            }
        }
    });
    let ok = Status::http(200).ok();
    let quota = governor::Quota::per_second(NonZeroU32::MAX);
    let governor = Arc::new(governor::RateLimiter::keyed(quota));
    for subject in subjects.iter() {
        let _ = governor.check_key(subject);
    }
    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("admission_{threads}-thread"));
        group.measurement_time(Duration::from_secs(4));
        group.sample_size(60);
        group.bench_function("count_limiter", |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, |t, i| {
                    let subject = subjects[(i as usize * 7 + t * 512) % SUBJECTS];
                    loop {
                        match limiter.admit_now(Some(subject), Method::Get, "/users/{id}") {
                            Admission::Admitted(ticket) => break limiter.settle(ticket, ok),
                            // A refill a burst outran (while the lease grows to
                            // the subject's rate): try again.
                            Admission::Wait => std::hint::spin_loop(),
                            other => panic!("never reached: {other:?}"),
                        }
                    }
                })
            })
        });
        group.bench_function("governor_keyed", |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, |t, i| {
                    let subject = subjects[(i as usize * 7 + t * 512) % SUBJECTS];
                    assert!(governor.check_key(&subject).is_ok());
                })
            })
        });
        group.finish();
    }
}

/// Runs `iters` operations split over `threads` threads at once; the wall time.
fn run_threads(threads: usize, iters: u64, op: impl Fn(usize, u64) + Sync) -> Duration {
    let per = iters.div_ceil(threads as u64);
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (op, barrier) = (&op, &barrier);
            scope.spawn(move || {
                barrier.wait();
                for i in 0..per {
                    op(t, i);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
    .mul_f64(iters as f64 / (per * threads as u64) as f64)
}

/// One replica admitting 10,000 requests a second for 10 s, on a fresh limiter and
/// subject: how many round trips to the ledger per 1,000,000 admitted.
fn lease_round_trips(background: &tokio::runtime::Runtime) {
    const RATE: u64 = 10_000;
    const SECONDS: u64 = 10;
    let (admitted, leases) = background.block_on(async {
        let counter = Arc::new(MemoryCounter::new());
        let mut policy = Policy::default();
        policy.limits.insert(
            "monthly".into(),
            Limit::new(LimitPeriod::Month, 1_000_000_000),
        );
        policy.plans.insert("plan".into(), vec!["monthly".into()]);
        policy
            .subjects
            .insert("steady".into(), Assignment::plan("plan"));
        counter.replace_policy(0, &policy).await.unwrap();
        let limiter = Limiter::start(counter, LimiterSettings::default())
            .await
            .unwrap();
        let subject = Subject::new("steady").unwrap();
        let mut admitted = 0u64;
        let started = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for ms in 0..SECONDS * 1000 {
            tick.tick().await;
            // Catch up to the steady rate after a late tick.
            let due = (started.elapsed().as_millis() as u64).max(ms) * RATE / 1000;
            while admitted < due {
                match limiter
                    .admit(Some(subject), Method::Get, "/users/{id}")
                    .await
                {
                    Admission::Admitted(ticket) => {
                        admitted += 1;
                        limiter.settle(ticket, Status::http(200).ok());
                    }
                    other => panic!("never reached: {other:?}"),
                }
            }
        }
        let leases = limiter.stats().leases;
        limiter.stop().await;
        (admitted, leases)
    });
    let per_million = leases as f64 * 1_000_000.0 / admitted as f64;
    println!(
        "lease round trips: {leases} for {admitted} admitted at {RATE}/s over {SECONDS} s: \
         {per_million:.0} per 1,000,000 admitted"
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/criterion/limits_leases.json");
    let _ = std::fs::create_dir_all(out.parent().unwrap());
    std::fs::write(
        out,
        format!(
            "{{\"admitted\": {admitted}, \"leases\": {leases}, \"rate\": {RATE}, \"seconds\": {SECONDS}, \"per_million\": {per_million:.1}}}\n"
        ),
    )
    .unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
