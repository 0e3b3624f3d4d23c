//! `/metrics`, `/healthz` and `/readyz` on one port, with the API and dashboard (`crate::api`);
//! `server` is the accept loop under them (limits, nosniff).
//!
//! `/metrics` first reads every queue's state from Redis into the gauges, then renders the
//! process's recorder. `/healthz` says the process serves (from its start, before Redis
//! answers); `/readyz` that the queue backend (`Backend::ping`) and, when one is configured,
//! PostgreSQL answer within `[http] ready_timeout_secs`, else 503 naming what is down.
pub mod server;

use crate::api::problem::Problem;
use crate::backend::{Backend, Queue, QueueError};
use crate::metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chatter_jobs::store::StoreHealth;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct HttpState {
    /// The backend (readiness) and the queues whose gauges `/metrics` reads.
    pub backend: Arc<dyn Backend>,
    pub queues: Arc<Vec<Arc<dyn Queue>>>,
    pub handle: PrometheusHandle,
    /// The API, events and dashboard (`[api] enabled`), with the request body limit.
    pub api: Option<(crate::api::ApiState, usize)>,
    /// PostgreSQL, when the process has one: `/readyz` checks it too.
    pub store: Option<Arc<dyn StoreHealth>>,
    /// Longest `/readyz` waits for each dependency.
    pub ready_timeout: Duration,
}

pub fn router(state: HttpState) -> Router {
    let api = state.api.clone();
    let base = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state);
    match api {
        Some((api, max_body)) => base.merge(crate::api::router(api, max_body)),
        None => base,
    }
}

/// What a process serves until Redis answers: alive, not ready, its metrics; nothing else.
pub fn starting_router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "redis: not connected yet (starting)\n",
                )
            }),
        )
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }),
        )
        .fallback(|| async { Problem::unavailable("starting: waiting for Redis") })
}

async fn metrics_page(State(s): State<HttpState>) -> impl IntoResponse {
    // During a Redis outage the counters are still served (a failed scrape would lose them);
    // `chatter_redis_up 0` says the queue gauges are stale.
    let up = match metrics::collect(&s.queues).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "queue gauges not refreshed");
            false
        }
    };
    metrics::record_redis_up(up);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.handle.render(),
    )
}

/// Each dependency answers within the timeout, or a line saying what is down.
async fn ready(State(s): State<HttpState>) -> impl IntoResponse {
    let limit = s.ready_timeout;
    let redis = async {
        let name = s.backend.name();
        match tokio::time::timeout(limit, s.backend.ping()).await {
            Ok(Ok(())) => None,
            // The backend's own error, as before the seam: `redis unreachable: <redis error>`.
            Ok(Err(QueueError::Backend { source, .. })) => {
                Some(format!("{name} unreachable: {source}"))
            }
            Ok(Err(e)) => Some(format!("{name} unreachable: {e}")),
            Err(_) => Some(format!("{name} unreachable: no answer within {limit:?}")),
        }
    };
    let postgres = async {
        let store = s.store.as_ref()?;
        match tokio::time::timeout(limit, store.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("postgres unreachable: {e}")),
            Err(_) => Some(format!("postgres unreachable: no answer within {limit:?}")),
        }
    };
    let (redis, postgres) = tokio::join!(redis, postgres);
    let down: Vec<String> = [redis, postgres].into_iter().flatten().collect();
    if down.is_empty() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, down.join("\n") + "\n")
    }
}
