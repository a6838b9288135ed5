//! The RPCs of limits: `GetPolicy`, `ReplacePolicy` and `Lease`. A lease is applied
//! with the amount and hardness of the server's own policy (read at most a second
//! ago), never the client's, and only to a window of the limit near now by the
//! server's clock. What a client gives back and its seed are its word: a token that
//! may send counts is trusted that far.

use std::time::Duration;

use count_core::limits::{LeaseAsk, MAX_AMOUNT, Policy, Window};
use count_core::{Counter, Error, Result, StoredPolicy, Subject};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::proto::count::v1 as pb;

/// How stale the server's policy may be when it leases.
const POLICY_FRESH_FOR: Duration = Duration::from_secs(1);

/// The server's policy, as last read.
#[derive(Debug, Default)]
pub(crate) struct PolicyCache(Mutex<Option<(Instant, StoredPolicy)>>);

impl PolicyCache {
    async fn current(&self, counter: &dyn Counter) -> Result<StoredPolicy> {
        let mut cached = self.0.lock().await;
        if let Some((read, policy)) = &*cached
            && read.elapsed() < POLICY_FRESH_FOR
        {
            return Ok(policy.clone());
        }
        Self::read(&mut cached, counter).await
    }

    async fn refresh(&self, counter: &dyn Counter) -> Result<StoredPolicy> {
        let mut cached = self.0.lock().await;
        if let Some((read, policy)) = &*cached
            && read.elapsed() < Duration::from_millis(100)
        {
            return Ok(policy.clone());
        }
        Self::read(&mut cached, counter).await
    }

    async fn read(
        cached: &mut Option<(Instant, StoredPolicy)>,
        counter: &dyn Counter,
    ) -> Result<StoredPolicy> {
        let known = cached.as_ref().map_or(u64::MAX, |(_, p)| p.version);
        let policy = match counter.policy_since(known).await? {
            Some(policy) => policy,
            None => cached.take().map(|(_, p)| p).unwrap_or_default(),
        };
        *cached = Some((Instant::now(), policy.clone()));
        Ok(policy)
    }
}

pub(crate) async fn get_policy(
    counter: &dyn Counter,
    request: pb::GetPolicyRequest,
) -> Result<pb::GetPolicyResponse> {
    let known = request.known_version;
    Ok(match counter.policy_since(known).await? {
        Some(stored) => pb::GetPolicyResponse {
            version: stored.version,
            policy_json: Some(stored.policy.to_json()),
        },
        None => pb::GetPolicyResponse {
            version: known,
            policy_json: None,
        },
    })
}

pub(crate) async fn replace_policy(
    counter: &dyn Counter,
    request: pb::ReplacePolicyRequest,
) -> Result<pb::ReplacePolicyResponse> {
    let policy = Policy::from_json(&request.policy_json)?;
    let version = counter
        .replace_policy(request.expected_version, &policy)
        .await?;
    Ok(pb::ReplacePolicyResponse { version })
}

pub(crate) async fn lease(
    counter: &dyn Counter,
    cache: &PolicyCache,
    request: pb::LeaseRequest,
) -> Result<pb::LeaseResponse> {
    Subject::check(&request.subject)?;
    if request.window_start >= request.window_end {
        return Err(Error::invalid(
            "window_end",
            request.window_end,
            format!("must be after window_start {}", request.window_start),
        ));
    }
    for (field, value) in [
        ("want", request.want),
        ("give_back", request.give_back),
        ("seed", request.seed),
    ] {
        if value > MAX_AMOUNT {
            return Err(Error::invalid(
                field,
                value,
                format!("at most {MAX_AMOUNT}"),
            ));
        }
    }
    let mut policy = cache.current(counter).await?;
    let find = |p: &StoredPolicy| {
        let limit = p.policy.limits.get(&request.limit)?;
        Some((
            p.policy.amount_for(&request.subject, &request.limit)?,
            limit.clone(),
        ))
    };
    if find(&policy).is_none() {
        // A client with a newer policy than the cached one: read it again (at most
        // every 100 ms, so unknown limits cannot make every lease read the policy).
        policy = cache.refresh(counter).await?;
    }
    let Some((amount, limit)) = find(&policy) else {
        return Err(Error::Conflict(format!(
            "subject {:?} has no limit {:?} in the server's policy (version {})",
            request.subject, request.limit, policy.version
        )));
    };
    // Only the limit's window holding now by the server's clock, or the one before
    // or after (a client's clock a little off): the ledger's keys stay the policy's.
    let now = count_core::jiff::Timestamp::now().as_second();
    let current = Window::of(limit.period, &limit.zone, now);
    let before = Window::of(limit.period, &limit.zone, current.start - 1);
    let after = Window::of(limit.period, &limit.zone, current.end);
    let asked = Window {
        start: request.window_start,
        end: request.window_end,
    };
    if ![before, current, after].contains(&asked) {
        return Err(Error::invalid(
            "window_start",
            request.window_start,
            format!(
                "not a window of limit {:?} near now (its current one is {}..{})",
                request.limit, current.start, current.end
            ),
        ));
    }
    let hard = limit.hard;
    let ask = LeaseAsk {
        subject: &request.subject,
        limit: &request.limit,
        window: Window {
            start: request.window_start,
            end: request.window_end,
        },
        amount,
        hard,
        want: request.want,
        give_back: request.give_back,
        seed: request.seed,
    };
    let grant = counter.lease(&ask).await?;
    Ok(pb::LeaseResponse {
        granted: grant.granted,
        taken: grant.taken,
        amount,
    })
}
