//! The clauses on limits: the policy is stored and versioned, the ledger never hands
//! out past a hard limit's amount however many ask at once, and a [`Limiter`] over the
//! backend admits exactly the amount, with what it admitted equal to the reports.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::limits::{
    Admission, Class, Endpoints, LeaseAsk, Limit, LimitPeriod, Limiter, LimiterSettings, Policy,
    Window, used_in,
};
use crate::testkit::{Scope, fresh_id};
use crate::{
    Batch, BucketCount, CountKey, Counter, CounterExt, Error, Method, Status, StatusClass, Zone,
};

/// Runs every clause on limits against `counter`. The policy clauses replace the
/// backend's policy: run them where no other test relies on it.
pub async fn run_limits(counter: Arc<dyn Counter>) {
    the_ledger_never_hands_out_past_the_amount(&*counter).await;
    the_policy_is_versioned(&*counter).await;
    a_limiter_admits_exactly_the_amount(counter).await;
}

fn ask<'a>(subject: &'a str, limit: &'a str, window: Window, want: u64) -> LeaseAsk<'a> {
    LeaseAsk {
        subject,
        limit,
        window,
        amount: 1000,
        hard: true,
        want,
        give_back: 0,
        seed: 10,
    }
}

/// Sixteen tasks leasing at once get exactly the amount less the seed between them;
/// giving back makes room again; another window starts from its own seed; a soft
/// limit hands out what is asked.
pub async fn the_ledger_never_hands_out_past_the_amount(counter: &dyn Counter) {
    let s = Scope::new();
    let subject = s.subject("acme");
    ledger_policy(counter, &[subject.as_str()])
        .await
        .expect("the ledger's policy");
    // Today's: a backend forgets windows ended a day ago.
    let window = Window::of(LimitPeriod::Day, &Zone::UTC, Timestamp::now().as_second());
    let tasks = (0..16).map(|i| async move {
        let mut granted = 0;
        loop {
            let grant = counter
                .lease(&ask(subject.as_str(), "daily", window, 3 + i % 5))
                .await
                .expect("a lease");
            assert!(grant.taken <= 1000, "taken {} past 1000", grant.taken);
            if grant.granted == 0 {
                return granted;
            }
            granted += grant.granted;
        }
    });
    let granted: u64 = join_all(tasks).await.into_iter().sum();
    assert_eq!(granted, 990, "granted in all, the seed of 10 taken first");
    let back = LeaseAsk {
        give_back: 50,
        ..ask(subject.as_str(), "daily", window, 0)
    };
    assert_eq!(counter.lease(&back).await.unwrap().taken, 950);
    let more = counter
        .lease(&ask(subject.as_str(), "daily", window, 100))
        .await
        .unwrap();
    assert_eq!(
        (more.granted, more.taken),
        (25, 975),
        "half of what is left"
    );
    let next = Window {
        start: window.end,
        end: window.end + 86_400,
    };
    let fresh = counter
        .lease(&ask(subject.as_str(), "daily", next, 5))
        .await
        .unwrap();
    assert_eq!(
        (fresh.granted, fresh.taken),
        (5, 15),
        "a new window starts at its seed"
    );
    let other = counter
        .lease(&ask(subject.as_str(), "second", window, 5))
        .await
        .unwrap();
    assert_eq!(other.taken, 15, "each limit has its own ledger");
    let soft = LeaseAsk {
        hard: false,
        ..ask(subject.as_str(), "soft", window, 500)
    };
    let soft = counter.lease(&soft).await.unwrap();
    assert_eq!(
        (soft.granted, soft.taken),
        (500, 510),
        "a soft limit hands out what is asked"
    );
    let soft = LeaseAsk {
        hard: false,
        ..ask(subject.as_str(), "soft", window, 900)
    };
    assert_eq!(
        counter.lease(&soft).await.unwrap().taken,
        1410,
        "past its amount"
    );
}

/// A policy where each of `subjects` has limits `daily` and `second` (hard, 1000 a day)
/// and `soft` (soft, 1000), as the ledger clauses lease them: a backend that applies
/// its own policy (a count server) finds them there.
async fn ledger_policy(counter: &dyn Counter, subjects: &[&str]) -> crate::Result<u64> {
    let mut policy = counter.policy().await?;
    policy.policy.limits.insert("daily".into(), daily(1000));
    policy.policy.limits.insert("second".into(), daily(1000));
    let mut soft = daily(1000);
    soft.hard = false;
    policy.policy.limits.insert("soft".into(), soft);
    policy.policy.plans.insert(
        "ledger".into(),
        vec!["daily".into(), "second".into(), "soft".into()],
    );
    for subject in subjects {
        policy
            .policy
            .subjects
            .insert((*subject).into(), crate::limits::Assignment::plan("ledger"));
    }
    counter.replace_policy(policy.version, &policy.policy).await
}

/// As [`the_ledger_never_hands_out_past_the_amount`], on a backend that fails some
/// transactions (restarts, lost commits): leases that fail are given up, and what
/// was granted in all never passes the amount less the seed.
pub async fn the_ledger_never_overgrants_under_faults(counter: &dyn Counter) {
    let s = Scope::new();
    let subject = s.subject("faulty");
    // Setting the policy may itself fail (a restart, a lost commit that applied).
    for _ in 0..100 {
        let has = counter
            .policy()
            .await
            .is_ok_and(|p| p.policy.subjects.contains_key(subject.as_str()));
        if has {
            break;
        }
        let _ = ledger_policy(counter, &[subject.as_str()]).await;
    }
    // Today's: a backend forgets windows ended a day ago.
    let window = Window::of(LimitPeriod::Day, &Zone::UTC, Timestamp::now().as_second());
    let tasks = (0..8).map(|i| async move {
        let mut granted = 0;
        let mut failures = 0;
        loop {
            match counter
                .lease(&ask(subject.as_str(), "daily", window, 5 + i % 3))
                .await
            {
                Ok(grant) if grant.granted == 0 => return granted,
                Ok(grant) => granted += grant.granted,
                Err(error) => {
                    assert!(error.is_retryable(), "{error}");
                    failures += 1;
                    assert!(failures < 200, "the backend fails every lease");
                }
            }
        }
    });
    let granted: u64 = join_all(tasks).await.into_iter().sum();
    assert!(
        granted <= 990,
        "granted {granted} past the amount less the seed"
    );
    let read = counter
        .lease(&ask(subject.as_str(), "daily", window, 0))
        .await;
    if let Ok(read) = read {
        assert_eq!(
            read.taken, 1000,
            "every lease that may have applied is taken"
        );
    }
}

/// Runs `tasks` together on this task: their leases interleave at every await.
async fn join_all<F: Future<Output = u64>>(tasks: impl Iterator<Item = F>) -> Vec<u64> {
    let mut tasks: Vec<_> = tasks.map(|t| Some(Box::pin(t))).collect();
    let mut done = vec![0; tasks.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in tasks.iter_mut().enumerate() {
            if let Some(task) = slot {
                match task.as_mut().poll(cx) {
                    std::task::Poll::Ready(n) => {
                        done[i] = n;
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done
}

fn daily(amount: u64) -> Limit {
    Limit::new(LimitPeriod::Day, amount)
}

/// A policy is read back as written with a new version; a replace from a stale
/// version is refused as a conflict and changes nothing; a bad policy is refused.
pub async fn the_policy_is_versioned(counter: &dyn Counter) {
    let s = Scope::new();
    let before = counter.policy().await.expect("the policy");
    let mut policy = Policy::default();
    policy.limits.insert("daily".into(), daily(100));
    policy.plans.insert("free".into(), vec!["daily".into()]);
    policy.subjects.insert(
        s.subject("acme").as_str().into(),
        crate::limits::Assignment::plan("free"),
    );
    let version = counter
        .replace_policy(before.version, &policy)
        .await
        .expect("replaced");
    assert!(version > before.version);
    assert_eq!(counter.policy_since(version).await.unwrap(), None);
    let read = counter.policy_since(before.version).await.unwrap().unwrap();
    assert_eq!((read.version, &read.policy), (version, &policy));
    let stale = counter
        .replace_policy(before.version, &Policy::default())
        .await;
    assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
    let mut bad = policy.clone();
    bad.plans.insert("pro".into(), vec!["missing".into()]);
    let refused = counter.replace_policy(version, &bad).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    assert_eq!(counter.policy().await.unwrap().policy, policy);
}

/// A limiter over the backend: 2xx only count, so a 500 gives its unit back; exactly
/// the amount is admitted, then refusals name the limit; what was admitted is what
/// the reports show; a raised amount is in force after a reload.
pub async fn a_limiter_admits_exactly_the_amount(counter: Arc<dyn Counter>) {
    let s = Scope::new();
    let subject = s.subject("acme");
    let mut limit = daily(40);
    limit.endpoints = Endpoints::Prefix(s.path("/").as_str().to_owned());
    limit.statuses = vec![Class(StatusClass::Success)];
    let mut policy = Policy::default();
    policy.limits.insert("daily".into(), limit.clone());
    policy.plans.insert("free".into(), vec!["daily".into()]);
    policy.subjects.insert(
        subject.as_str().into(),
        crate::limits::Assignment::plan("free"),
    );
    let version = counter.policy().await.unwrap().version;
    let version = counter.replace_policy(version, &policy).await.unwrap();
    let settings = LimiterSettings {
        reload_every: Duration::from_millis(100),
        ..LimiterSettings::default()
    };
    let limiter = Limiter::start(Arc::clone(&counter), settings)
        .await
        .expect("a limiter");
    let path = s.path("/search");
    let other = crate::Path::new("/not/limited").unwrap();
    assert!(matches!(
        limiter
            .admit(Some(subject), Method::Get, other.as_str())
            .await,
        Admission::Untouched
    ));
    let ok = Status::http(200).unwrap();
    let failed = Status::http(500).unwrap();
    let (mut oks, mut fails, mut refused) = (0u64, 0u64, 0u64);
    while refused < 3 {
        match limiter
            .admit(Some(subject), Method::Get, path.as_str())
            .await
        {
            Admission::Admitted(ticket) => {
                if (oks + fails) % 8 == 7 {
                    fails += 1;
                    limiter.settle(ticket, Some(failed));
                } else {
                    oks += 1;
                    assert!(limiter.quota(&ticket).unwrap().remaining <= 40 - oks + 1);
                    limiter.settle(ticket, Some(ok));
                }
            }
            Admission::Refused(refusal) => {
                refused += 1;
                let quota = refusal.quota().expect("the limit that refused");
                assert_eq!(
                    (&*quota.limit, quota.amount, quota.remaining),
                    ("daily", 40, 0)
                );
                assert!(refusal.retry_after >= 1 && refusal.retry_after <= 90_000);
            }
            other => panic!("a limiter either admits or refuses: {other:?}"),
        }
        assert!(oks + fails < 200, "never refused");
    }
    assert_eq!(oks, 40, "exactly the amount of 2xx");
    assert!(fails >= 5);
    // The reports: the 2xx, the 5xx and the 429s counted; the limit used its 40.
    let now = Timestamp::now();
    let key = |code: u16| CountKey::of(Method::Get, path, Some(subject), Status::http(code).ok());
    let batch = Batch::new(
        fresh_id(),
        vec![
            BucketCount::new(key(200), now, oks),
            BucketCount::new(key(500), now, fails),
            BucketCount::new(key(429), now, refused),
        ],
    )
    .unwrap();
    counter.write(&batch).await.expect("written");
    let window = Window::of(LimitPeriod::Day, &Zone::UTC, now.as_second());
    let used = used_in(&*counter, subject.as_str(), &limit, window)
        .await
        .unwrap();
    assert_eq!(used, 40, "one truth: the reports show what the limit used");
    // Raise the amount: in force after a reload.
    policy.limits.get_mut("daily").unwrap().amount = 45;
    counter.replace_policy(version, &policy).await.unwrap();
    let mut more = 0;
    for _ in 0..100 {
        match limiter
            .admit(Some(subject), Method::Get, path.as_str())
            .await
        {
            Admission::Admitted(ticket) => {
                more += 1;
                limiter.settle(ticket, Some(ok));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        if more == 5 {
            break;
        }
    }
    assert_eq!(more, 5, "the raised amount's 5 more");
    assert!(matches!(
        limiter
            .admit(Some(subject), Method::Get, path.as_str())
            .await,
        Admission::Refused(_)
    ));
    limiter.stop().await;
    let stats = limiter.stats();
    assert_eq!(
        stats.admitted,
        oks + 5,
        "units used: a 5xx gave its unit back"
    );
    assert!(stats.lease_failures == 0 && stats.leases > 0, "{stats:?}");
}
