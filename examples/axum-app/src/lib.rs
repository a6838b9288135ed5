//! A small axum service counted through [`CountLayer`]: per route, per API key and per
//! response status, with its own live reports.
//!
//! Callers send `x-api-key: <key>`. The key's owner (never the key itself) is the
//! count's subject, looked up in the app's table of keys: an unknown or missing key
//! is counted without a subject (and refused with 401 by the routes that need one), so
//! made-up keys cannot become subjects.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use count::layer::CountLayer;
use count::limits::{Assignment, Endpoints, Limit, LimitPeriod, Limiter, Policy};
use count::{
    CountQueue, Counter, CounterExt, DateRange, Day, Dimension, Error, Subject, TotalsQuery,
};
use serde_json::{Value, json};

/// The app's API keys and who owns each: a real service keeps these in its database.
#[derive(Debug, Clone)]
pub struct ApiKeys(Arc<HashMap<String, Subject>>);

impl ApiKeys {
    /// Keys `(key, owner)`; an owner is checked as a [`Subject`].
    ///
    /// # Errors
    ///
    /// When an owner is not a valid subject (empty, too long, control characters).
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a str, &'a str)>) -> count::Result<Self> {
        let keys = keys
            .into_iter()
            .map(|(key, owner)| Ok((key.to_owned(), Subject::new(owner)?)))
            .collect::<count::Result<_>>()?;
        Ok(ApiKeys(Arc::new(keys)))
    }

    /// The owner of the request's `x-api-key`, if it is a known key.
    pub fn owner<B>(&self, request: &axum::http::Request<B>) -> Option<Subject> {
        let key = request.headers().get("x-api-key")?.to_str().ok()?;
        self.0.get(key).copied()
    }
}

#[derive(Clone)]
struct Counting {
    queue: CountQueue,
    counter: Arc<dyn Counter>,
}

/// The demo's plans: `free`, 5 requests a day to `/users` routes (so a key hits its
/// limit after five), and `pro`, 1,000 a day; `acme` is on pro, `globex` on free.
/// Days begin at midnight UTC.
pub fn demo_policy() -> Policy {
    let users = |amount| {
        let mut limit = Limit::new(LimitPeriod::Day, amount);
        limit.endpoints = Endpoints::Prefix("/users".into());
        limit
    };
    let mut policy = Policy::default();
    policy.limits.insert("free-daily".into(), users(5));
    policy.limits.insert("pro-daily".into(), users(1_000));
    policy
        .plans
        .insert("free".into(), vec!["free-daily".into()]);
    policy.plans.insert("pro".into(), vec!["pro-daily".into()]);
    policy
        .subjects
        .insert("acme".into(), Assignment::plan("pro"));
    policy
        .subjects
        .insert("globex".into(), Assignment::plan("free"));
    policy
}

/// The app: user routes that need an API key, and two open reports, all counted into
/// `queue` (which writes to `counter`) by route, caller and status; callers past
/// their plan's limit (`limiter`'s policy) get 429 before reaching a route.
pub fn app(
    queue: CountQueue,
    counter: Arc<dyn Counter>,
    keys: ApiKeys,
    limiter: Limiter,
) -> Router {
    let owners = keys.clone();
    let counted = CountLayer::new(queue.clone())
        .subject(move |request: &axum::http::Request<Body>| owners.owner(request))
        .limits(limiter);
    let users = Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", get(get_user).patch(update_user))
        .route_layer(middleware::from_fn_with_state(keys, require_key));
    Router::new()
        .merge(users)
        .route("/stats/today", get(stats_today))
        .route("/stats/callers", get(callers_today))
        // `layer` (not a layer around the router) runs after routing, so the route
        // template (`/users/{id}`) is known; the 404 fallback is counted too, and so
        // are the requests `require_key` refuses (it runs inside).
        .layer(counted)
        .with_state(Counting { queue, counter })
}

async fn require_key(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    match keys.owner(&request) {
        Some(_) => next.run(request).await,
        None => (
            StatusCode::UNAUTHORIZED,
            "a known x-api-key header is required",
        )
            .into_response(),
    }
}

async fn list_users() -> Json<Value> {
    Json(json!([{ "id": 1 }, { "id": 2 }]))
}

async fn create_user() -> StatusCode {
    StatusCode::CREATED
}

async fn get_user(axum::extract::Path(id): axum::extract::Path<u64>) -> Response {
    if id == 0 {
        return StatusCode::NOT_FOUND.into_response();
    }
    Json(json!({ "id": id })).into_response()
}

async fn update_user(axum::extract::Path(id): axum::extract::Path<u64>) -> Json<Value> {
    Json(json!({ "id": id, "updated": true }))
}

type Failure = (StatusCode, String);

fn unavailable(error: Error) -> Failure {
    (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
}

/// Today's counts per endpoint, live: flushed first, so every request answered
/// before this one is in.
async fn stats_today(State(state): State<Counting>) -> Result<Json<Value>, Failure> {
    state.queue.flush().await.map_err(unavailable)?;
    let day = Day::today();
    let totals = state.counter.day_totals(day).await.map_err(unavailable)?;
    let counts: Vec<Value> = totals
        .iter()
        .map(|t| {
            json!({
                "method": t.endpoint.method.as_str(),
                "path": t.endpoint.path.as_str(),
                "count": t.total,
            })
        })
        .collect();
    Ok(Json(json!({ "day": day.to_string(), "counts": counts })))
}

/// Who called what today, and how it ended: per caller, endpoint and status.
async fn callers_today(State(state): State<Counting>) -> Result<Json<Value>, Failure> {
    state.queue.flush().await.map_err(unavailable)?;
    let day = Day::today();
    let query = TotalsQuery::new(
        DateRange::day(day),
        &[Dimension::Subject, Dimension::Endpoint, Dimension::Status],
    )
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let rows = state.counter.totals(&query).await.map_err(unavailable)?;
    let calls: Vec<Value> = rows
        .iter()
        .map(|t| {
            let endpoint = t.endpoint.expect("grouped by endpoint");
            json!({
                "caller": t.subject.map(|s| s.as_str()),
                "method": endpoint.method.as_str(),
                "path": endpoint.path.as_str(),
                "status": t.status.map(|s| s.code()),
                "count": t.total,
            })
        })
        .collect();
    Ok(Json(json!({ "day": day.to_string(), "calls": calls })))
}
