//! The limits API: the policy whole, its limits, plans and subjects' plans one by
//! one, and where subjects stand against their limits. JSON in and out; every field
//! is checked and a bad one is a 400 naming it.
//!
//! | route | does |
//! |---|---|
//! | `GET /api/v1/policy` | `{"version": 3, "policy": {...}}` |
//! | `PUT /api/v1/policy` | replaces it: `{"version": 3, "policy": {...}}`, 409 when the version moved |
//! | `GET /api/v1/limits`, `GET/PUT/DELETE /api/v1/limits/{name}` | one limit (`PUT`'s body: the limit) |
//! | `GET /api/v1/plans`, `GET/PUT/DELETE /api/v1/plans/{name}` | one plan (`PUT`'s body: `["daily", "monthly"]`) |
//! | `GET/PUT/DELETE /api/v1/subjects/{subject}/plan` | a subject's plan (`PUT`'s body: `{"plan": "pro", "overrides": {"daily": 5000}}`) |
//! | `GET /api/v1/usage?subject=&top=50` | subjects against their limits now, nearest first |
//!
//! A change reads the policy, changes it and replaces it from the version read,
//! again if another change came first: every replica's limiter has it within its
//! reload interval (2 s).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use count_core::limits::{Assignment, Limit, Policy, change_policy, usage};
use count_core::{CounterExt, Error, StoredPolicy};
use serde_json::{Value, json};

use super::Api;
use super::error::ApiError;
use super::params::decode;

/// How many rows `/api/v1/usage` answers at most by default, and at most at all.
const USAGE_ROWS: usize = 50;
const MAX_USAGE_ROWS: usize = 10_000;

fn refused(error: Error) -> ApiError {
    match error {
        Error::InvalidInput { field, .. } => ApiError::Invalid {
            field: field.to_owned(),
            message: error.to_string(),
        },
        Error::Conflict(message) => ApiError::Conflict(message),
        Error::NotFound(message) => ApiError::NotFound(message),
        other => ApiError::backend(&other),
    }
}

async fn read(api: &Api) -> Result<StoredPolicy, ApiError> {
    match tokio::time::timeout(api.backend_timeout, api.counter.policy()).await {
        Ok(result) => result.map_err(refused),
        Err(_) => Err(ApiError::backend_timeout(api.backend_timeout)),
    }
}

/// Reads, changes with `change`, replaces from the version read; again when
/// another change came first.
async fn change(
    api: &Api,
    change: impl Fn(&mut Policy) -> count_core::Result<()>,
) -> Result<StoredPolicy, ApiError> {
    let changed = tokio::time::timeout(api.backend_timeout, change_policy(&*api.counter, change))
        .await
        .map_err(|_| ApiError::backend_timeout(api.backend_timeout))?
        .map_err(refused)?;
    tracing::info!(
        version = changed.version,
        "count-server: the policy of limits changed"
    );
    Ok(changed)
}

/// The JSON body as a `T`; a refusal names the field by its path in the body
/// (`amount`, `thresholds[1]`), or `what` for the body as a whole.
fn body<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &Bytes) -> Result<T, ApiError> {
    let json = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { what.to_owned() } else { path };
        ApiError::Invalid {
            message: format!("invalid {field}: {}", e.inner()),
            field,
        }
    })
}

fn answer(value: Value) -> Response {
    Json(value).into_response()
}

fn not_found(what: &str, name: &str) -> Error {
    Error::NotFound(format!("no {what} {name:?}"))
}

pub(super) async fn get_policy(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let stored = read(&api).await?;
    Ok(answer(
        json!({ "version": stored.version, "policy": stored.policy }),
    ))
}

pub(super) async fn put_policy(
    State(api): State<Arc<Api>>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Replace {
        version: u64,
        policy: Policy,
    }
    let replace: Replace = body("policy", &bytes)?;
    replace.policy.check().map_err(refused)?;
    let replaced = tokio::time::timeout(
        api.backend_timeout,
        api.counter.replace_policy(replace.version, &replace.policy),
    )
    .await
    .map_err(|_| ApiError::backend_timeout(api.backend_timeout))?;
    let version = replaced.map_err(refused)?;
    Ok(answer(
        json!({ "version": version, "policy": replace.policy }),
    ))
}

pub(super) async fn list_limits(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let stored = read(&api).await?;
    Ok(answer(
        json!({ "version": stored.version, "limits": stored.policy.limits }),
    ))
}

pub(super) async fn get_limit(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let stored = read(&api).await?;
    let limit = stored
        .policy
        .limits
        .get(&name)
        .ok_or_else(|| refused(not_found("limit", &name)))?;
    Ok(answer(
        json!({ "version": stored.version, "name": name, "limit": limit }),
    ))
}

pub(super) async fn put_limit(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let limit: Limit = body("limit", &bytes)?;
    let stored = change(&api, |policy| {
        policy.limits.insert(name.clone(), limit.clone());
        Ok(())
    })
    .await?;
    Ok(answer(
        json!({ "version": stored.version, "name": name, "limit": limit }),
    ))
}

pub(super) async fn delete_limit(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let stored = change(&api, |policy| {
        policy
            .limits
            .remove(&name)
            .ok_or_else(|| not_found("limit", &name))?;
        Ok(())
    })
    .await?;
    Ok(answer(json!({ "version": stored.version })))
}

pub(super) async fn list_plans(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let stored = read(&api).await?;
    Ok(answer(
        json!({ "version": stored.version, "plans": stored.policy.plans }),
    ))
}

pub(super) async fn get_plan(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let stored = read(&api).await?;
    let plan = stored
        .policy
        .plans
        .get(&name)
        .ok_or_else(|| refused(not_found("plan", &name)))?;
    Ok(answer(
        json!({ "version": stored.version, "name": name, "limits": plan }),
    ))
}

pub(super) async fn put_plan(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let limits: Vec<String> = body("limits", &bytes)?;
    let stored = change(&api, |policy| {
        policy.plans.insert(name.clone(), limits.clone());
        Ok(())
    })
    .await?;
    Ok(answer(
        json!({ "version": stored.version, "name": name, "limits": limits }),
    ))
}

pub(super) async fn delete_plan(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let stored = change(&api, |policy| {
        policy
            .plans
            .remove(&name)
            .ok_or_else(|| not_found("plan", &name))?;
        Ok(())
    })
    .await?;
    Ok(answer(json!({ "version": stored.version })))
}

pub(super) async fn get_subject_plan(
    State(api): State<Arc<Api>>,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let stored = read(&api).await?;
    let assignment = stored
        .policy
        .subjects
        .get(&subject)
        .ok_or_else(|| refused(not_found("plan for subject", &subject)))?;
    Ok(answer(
        json!({ "version": stored.version, "subject": subject, "plan": assignment }),
    ))
}

pub(super) async fn put_subject_plan(
    State(api): State<Arc<Api>>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let assignment: Assignment = body("plan", &bytes)?;
    let stored = change(&api, |policy| {
        policy.subjects.insert(subject.clone(), assignment.clone());
        Ok(())
    })
    .await?;
    Ok(answer(
        json!({ "version": stored.version, "subject": subject, "plan": assignment }),
    ))
}

pub(super) async fn delete_subject_plan(
    State(api): State<Arc<Api>>,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    let stored = change(&api, |policy| {
        policy
            .subjects
            .remove(&subject)
            .ok_or_else(|| not_found("plan for subject", &subject))?;
        Ok(())
    })
    .await?;
    Ok(answer(json!({ "version": stored.version })))
}

/// `subject=` (one subject) and `top=` (rows, 1 to 10,000; default 50).
fn usage_params(raw: Option<&str>) -> Result<(Option<String>, usize), ApiError> {
    let mut subject = None;
    let mut rows = USAGE_ROWS;
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let invalid = |field: &str, message: String| ApiError::Invalid {
            field: field.to_owned(),
            message,
        };
        let key = decode(key).map_err(|rule| invalid("query", rule))?;
        let value = decode(value).map_err(|rule| invalid(&key, rule))?;
        match &*key {
            "subject" => subject = Some(value.into_owned()),
            "top" => {
                rows = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_USAGE_ROWS).contains(n))
                    .ok_or_else(|| ApiError::Invalid {
                        field: "top".into(),
                        message: format!(
                            "invalid top {value:?}: the number of rows, 1 to {MAX_USAGE_ROWS}"
                        ),
                    })?;
            }
            other => {
                return Err(ApiError::Invalid {
                    field: other.into(),
                    message: format!("unknown parameter {other:?}: expected subject or top"),
                });
            }
        }
    }
    Ok((subject, rows))
}

pub(super) async fn get_usage(
    State(api): State<Arc<Api>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (subject, rows) = usage_params(raw.as_deref())?;
    let stored = read(&api).await?;
    let now = count_core::jiff::Timestamp::now().as_second();
    let usage = tokio::time::timeout(
        api.backend_timeout,
        usage(&*api.counter, &stored.policy, now, subject.as_deref()),
    )
    .await
    .map_err(|_| ApiError::backend_timeout(api.backend_timeout))?
    .map_err(refused)?;
    let total = usage.len();
    let shown: Vec<Value> = usage
        .iter()
        .take(rows)
        .map(|u| {
            json!({
                "subject": u.subject,
                "limit": u.limit,
                "period": u.period,
                "start": count_core::jiff::Timestamp::from_second(u.window.start).map(|t| t.to_string()).ok(),
                "end": count_core::jiff::Timestamp::from_second(u.window.end).map(|t| t.to_string()).ok(),
                "used": u.used,
                "amount": u.amount,
                "share": (u.share() * 10_000.0).round() / 10_000.0,
                "hard": u.hard,
                "over": u.used >= u.amount,
            })
        })
        .collect();
    Ok((
        StatusCode::OK,
        Json(json!({ "version": stored.version, "rows": total, "usage": shown })),
    )
        .into_response())
}
