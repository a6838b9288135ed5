//! A small axum service counted through [`CountLayer`], with its live report.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use count_core::layer::CountLayer;
use count_core::{CountQueue, Counter, CounterExt, Day};
use serde_json::{Value, json};

#[derive(Clone)]
struct Counting {
    queue: CountQueue,
    counter: Arc<dyn Counter>,
}

/// The app: a few user routes, and `GET /stats/today`, all counted into `queue`,
/// which writes to `counter`.
pub fn app(queue: CountQueue, counter: Arc<dyn Counter>) -> Router {
    let layer = CountLayer::new(queue.clone());
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", get(get_user).patch(update_user))
        .route("/stats/today", get(stats_today))
        // `layer` (not a layer around the router) runs after routing, so the route
        // template (`/users/{id}`) is known; the 404 fallback is counted too.
        .layer(layer)
        .with_state(Counting { queue, counter })
}

async fn list_users() -> Json<Value> {
    Json(json!([{ "id": 1 }, { "id": 2 }]))
}

async fn create_user() -> StatusCode {
    StatusCode::CREATED
}

async fn get_user(axum::extract::Path(id): axum::extract::Path<u64>) -> Json<Value> {
    Json(json!({ "id": id }))
}

async fn update_user(axum::extract::Path(id): axum::extract::Path<u64>) -> Json<Value> {
    Json(json!({ "id": id, "updated": true }))
}

/// Today's counts, live: flushed first, so every request before this one is in.
async fn stats_today(State(state): State<Counting>) -> Result<Json<Value>, (StatusCode, String)> {
    let unavailable = |e: count_core::Error| (StatusCode::SERVICE_UNAVAILABLE, e.to_string());
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
