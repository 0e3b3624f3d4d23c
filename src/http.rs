//! `/metrics`, `/healthz` and `/readyz` on one port, with the API and dashboard (`crate::api`).
//!
//! `/metrics` first reads every queue's state from Redis into the gauges, then renders the
//! process's recorder. `/healthz` says the process serves; `/readyz` that Redis answers.
use crate::metrics;
use crate::queue::RedisQueue;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

#[derive(Clone)]
pub struct HttpState {
    pub queues: Arc<Vec<RedisQueue>>,
    pub handle: PrometheusHandle,
    /// The API, events and dashboard (`[api] enabled`), with the request body limit.
    pub api: Option<(crate::api::ApiState, usize)>,
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

async fn ready(State(s): State<HttpState>) -> impl IntoResponse {
    let Some(q) = s.queues.first() else {
        return (StatusCode::OK, "ok\n".to_string());
    };
    let pong: Result<String, _> = redis::cmd("PING").query_async(&mut q.connection()).await;
    match pong {
        Ok(_) => (StatusCode::OK, "ok\n".to_string()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("redis unreachable: {e}\n"),
        ),
    }
}

/// Serve until `shutdown` is tripped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
