//! The routes on one job: show, cancel and retry (after [`locate`] found it and checked the caller
//! may see it, 404 otherwise), and the admins' cleanup of finished records across queues.
use super::{CancelReply, CleanupReply, CleanupRequest, JobView};
use crate::api::ApiState;
use crate::api::auth::Caller;
use crate::api::problem::{ApiResult, Problem, json_body, query_pairs};
use crate::backend::{CancelResult, JobRecord, Queue};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use std::sync::Arc;

/// The queue holding job `id`, if the caller may see it (404 otherwise, also for another user's).
async fn locate(s: &ApiState, caller: &Caller, id: &str) -> ApiResult<(Arc<dyn Queue>, JobRecord)> {
    if ulid::Ulid::from_string(id).is_err() {
        return Err(Problem::field("id", format!("{id:?} is not a ULID")));
    }
    let not_found = || Problem::not_found(format!("no job {id}"));
    let q = s.find(id).await?.ok_or_else(not_found)?;
    let rec = q.show(id).await?.ok_or_else(not_found)?;
    if !caller.may_see(rec.owner.as_deref()) {
        return Err(not_found());
    }
    Ok((q, rec))
}

/// One job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's ULID")),
    responses(
        (status = 200, body = JobView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn show(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let caller = s.caller(&headers)?;
    let id = id.to_ascii_uppercase();
    let (_, rec) = locate(&s, &caller, &id).await?;
    Ok(Json(JobView::from_record(rec)))
}

/// Cancel a job: one that has not started never runs; a running one is signalled.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "The job's ULID")),
    responses(
        (status = 200, body = CancelReply),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It already ended", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn cancel(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<CancelReply>> {
    let caller = s.caller(&headers)?;
    let id = id.to_ascii_uppercase();
    let (q, _) = locate(&s, &caller, &id).await?;
    let message = match q.cancel(&id).await? {
        CancelResult::Cancelled => "cancelled".to_string(),
        CancelResult::Cancelling => "cancelling: its worker was signalled".to_string(),
        CancelResult::NotFound => return Err(Problem::not_found(format!("no job {id}"))),
        CancelResult::AlreadyFinished(st) => {
            return Err(Problem::conflict(format!("job {id} already ended: {st}")));
        }
    };
    Ok(Json(CancelReply {
        success: true,
        message,
        job_id: id,
    }))
}

/// Run a dead-lettered (failed) job again, with a fresh attempt count.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "The job's ULID")),
    responses(
        (status = 200, body = JobView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is not dead-lettered", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn retry(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let caller = s.caller(&headers)?;
    let id = id.to_ascii_uppercase();
    let (q, rec) = locate(&s, &caller, &id).await?;
    if q.replay(Some(&id), 1).await? == 0 {
        return Err(Problem::conflict(format!(
            "job {id} is {}, not dead-lettered: only failed jobs can be retried",
            rec.status
        )));
    }
    let rec = q
        .show(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no job {id}")))?;
    Ok(Json(JobView::from_record(rec)))
}

/// Delete finished job records now (admins only; `force` also deletes dead letters).
#[utoipa::path(post, path = "/api/v1/jobs/cleanup", tag = "jobs", request_body(content = Option<CleanupRequest>),
    params(("force" = Option<bool>, Query, description = "Also delete dead letters (as in the body)")),
    responses(
        (status = 200, body = CleanupReply),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn cleanup(
    State(s): State<ApiState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Json<CleanupReply>> {
    s.admin(&headers)?;
    let mut req: CleanupRequest = if body.is_empty() {
        CleanupRequest::default()
    } else {
        json_body(&headers, &body)?
    };
    // Chatter passes `force` as a query parameter.
    for (k, v) in query_pairs(query.as_deref())? {
        match (k.as_str(), v.as_str()) {
            ("force", "true" | "1") => req.force = true,
            ("force", "false" | "0") => {}
            ("force", _) => return Err(Problem::field("force", format!("{v:?} is not a boolean"))),
            _ => return Err(Problem::field(k, "unknown query parameter")),
        }
    }
    let (mut finished, mut dead) = (0, 0);
    for q in s.queues().await? {
        let r = q.cleanup(req.force).await?;
        finished += r.finished_removed;
        dead += r.dead_removed;
    }
    Ok(Json(CleanupReply {
        success: true,
        message: format!("removed {finished} finished and {dead} dead job records"),
        removed_finished: finished,
        removed_dead: dead,
    }))
}
