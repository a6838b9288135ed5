//! Admission against a model: random plans of limits (endpoints, statuses, amounts)
//! and random requests, one replica over the memory backend. A request is admitted
//! exactly when every limit covering it has quota left, and uses quota only in the
//! limits that count its status.

use std::sync::Arc;

use count_core::limits::{
    Admission, Assignment, Class, Endpoints, Limit, LimitPeriod, Limiter, LimiterSettings, Policy,
};
use count_core::{Counter, CounterExt, Method, Path, Status, StatusClass, Subject};
use count_memory::MemoryCounter;
use proptest::prelude::*;

const PATHS: [&str; 3] = ["/model/a", "/model/b", "/other/c"];

#[derive(Debug, Clone)]
struct ModelLimit {
    endpoints: u8, // 0: all, 1: prefix /model/, 2: the list [GET /model/a]
    success_only: bool,
    amount: u64,
    period: LimitPeriod,
}

fn limit_strategy() -> impl Strategy<Value = ModelLimit> {
    (
        0u8..3,
        any::<bool>(),
        0u64..25,
        prop_oneof![
            Just(LimitPeriod::Day),
            Just(LimitPeriod::Week),
            Just(LimitPeriod::Month),
            (1u32..=31).prop_map(|anchor| LimitPeriod::Cycle { anchor }),
        ],
    )
        .prop_map(|(endpoints, success_only, amount, period)| ModelLimit {
            endpoints,
            success_only,
            amount,
            period,
        })
}

impl ModelLimit {
    fn covers(&self, method: Method, path: &str) -> bool {
        match self.endpoints {
            0 => true,
            1 => path.starts_with("/model/"),
            _ => method == Method::Get && path == "/model/a",
        }
    }

    fn counts(&self, code: u16) -> bool {
        code != 429 && (!self.success_only || (200..300).contains(&code))
    }

    fn limit(&self, zone: &str) -> Limit {
        let mut limit = Limit::new(self.period, self.amount);
        limit.zone = count_core::Zone::new(zone).unwrap();
        limit.endpoints = match self.endpoints {
            0 => Endpoints::All,
            1 => Endpoints::Prefix("/model/".into()),
            _ => Endpoints::List(vec!["GET /model/a".to_owned().try_into().unwrap()]),
        };
        if self.success_only {
            limit.statuses = vec![Class(StatusClass::Success)];
        }
        limit
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn admission_matches_the_model(
        limits in prop::collection::vec(limit_strategy(), 1..4),
        zone in prop::sample::select(vec!["UTC", "Asia/Kathmandu", "America/New_York"]),
        requests in prop::collection::vec((0usize..3, any::<bool>(), prop::sample::select(vec![200u16, 201, 404, 429, 500])), 1..120),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(check(limits, zone, requests));
    }
}

async fn check(limits: Vec<ModelLimit>, zone: &str, requests: Vec<(usize, bool, u16)>) {
    let counter: Arc<dyn Counter> = Arc::new(MemoryCounter::new());
    let subject = Subject::new("model-subject").unwrap();
    let mut policy = Policy::default();
    let names: Vec<String> = (0..limits.len()).map(|i| format!("l{i}")).collect();
    for (name, limit) in names.iter().zip(&limits) {
        policy.limits.insert(name.clone(), limit.limit(zone));
    }
    policy.plans.insert("plan".into(), names.clone());
    policy
        .subjects
        .insert(subject.as_str().into(), Assignment::plan("plan"));
    let version = counter.policy().await.unwrap().version;
    counter.replace_policy(version, &policy).await.unwrap();
    let limiter = Limiter::start(Arc::clone(&counter), LimiterSettings::default())
        .await
        .unwrap();
    let mut used = vec![0u64; limits.len()];
    for (i, (p, post, code)) in requests.into_iter().enumerate() {
        let method = if post { Method::Post } else { Method::Get };
        let path = Path::new(PATHS[p]).unwrap();
        let covering: Vec<usize> = (0..limits.len())
            .filter(|&l| limits[l].covers(method, PATHS[p]))
            .collect();
        let admit = covering.iter().all(|&l| used[l] < limits[l].amount);
        match limiter.admit(Some(subject), method, path.as_str()).await {
            Admission::Untouched => assert!(covering.is_empty(), "request {i}: untouched"),
            Admission::Admitted(ticket) => {
                assert!(admit, "request {i}: admitted past a limit: {used:?}");
                limiter.settle(ticket, Some(Status::http(code).unwrap()));
                for &l in &covering {
                    used[l] += u64::from(limits[l].counts(code));
                }
            }
            Admission::Refused(refusal) => {
                assert!(
                    !covering.is_empty() && !admit,
                    "request {i}: refused with quota left: {used:?}"
                );
                let quota = refusal.quota().expect("the limit that refused");
                let l: usize = quota.limit[1..].parse().unwrap();
                assert!(
                    used[l] >= limits[l].amount,
                    "refused by {} with quota left",
                    quota.limit
                );
            }
            Admission::Wait => panic!("admit never says wait"),
        }
    }
    limiter.stop().await;
}
