//! `GET /api/v1/jobs/stats/overview` (Chatter's counts: every queue's for an admin, the caller's
//! own from their index otherwise) and `/api/v1/jobs/stats/queues` (each queue's depth by state,
//! for admins).
use super::StatsOverview;
use super::list::{ALL_TIME, MAX_SCAN, collect};
use crate::api::ApiState;
use crate::api::problem::{ApiResult, Problem};
use crate::backend::{Queue, QueueStats};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use std::sync::Arc;

async fn all_stats(queues: &[Arc<dyn Queue>]) -> ApiResult<Vec<QueueStats>> {
    let mut out = Vec::new();
    for q in queues {
        out.push(q.stats().await?);
    }
    Ok(out)
}

/// Chatter's overview: the caller's jobs by state (every job for an admin), queue size, workers.
#[utoipa::path(get, path = "/api/v1/jobs/stats/overview", tag = "jobs",
    responses(
        (status = 200, body = StatsOverview),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn overview(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> ApiResult<Json<StatsOverview>> {
    let caller = s.caller(&headers)?;
    let queues = s.queues().await?;
    let stats = all_stats(&queues).await?;
    let queue_size: u64 = stats
        .iter()
        .map(|q| q.ready + q.scheduled + q.retrying)
        .sum();
    let active_workers = stats.iter().map(|q| q.workers).sum();
    if caller.admin {
        return Ok(Json(StatsOverview {
            total_jobs: stats
                .iter()
                .map(|q| q.ready + q.scheduled + q.retrying + q.running + q.dead + q.finished)
                .sum(),
            pending_jobs: stats
                .iter()
                .map(|q| q.ready + q.scheduled + q.retrying)
                .sum(),
            running_jobs: stats.iter().map(|q| q.running).sum(),
            completed_jobs: stats.iter().map(|q| q.finished).sum(),
            failed_jobs: stats.iter().map(|q| q.dead).sum(),
            queue_size,
            active_workers,
        }));
    }
    // A user's own counts, from their index (bounded like a filtered listing).
    let mut o = StatsOverview {
        total_jobs: 0,
        pending_jobs: 0,
        running_jobs: 0,
        completed_jobs: 0,
        failed_jobs: 0,
        queue_size,
        active_workers,
    };
    for r in collect(&queues, Some(&caller.user), ALL_TIME, MAX_SCAN).await? {
        o.total_jobs += 1;
        match r.status.as_str() {
            "pending" | "retrying" => o.pending_jobs += 1,
            "running" => o.running_jobs += 1,
            // Like the queues' `finished`: completed or cancelled.
            "completed" | "cancelled" => o.completed_jobs += 1,
            "failed" => o.failed_jobs += 1,
            _ => {}
        }
    }
    Ok(Json(o))
}

/// Every queue's depth by state, paused flag, workers and oldest ready age (admins).
#[utoipa::path(get, path = "/api/v1/jobs/stats/queues", tag = "jobs",
    responses(
        (status = 200, body = Vec<QueueStats>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn queue_stats(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<QueueStats>>> {
    s.admin(&headers)?;
    Ok(Json(all_stats(&s.queues().await?).await?))
}
