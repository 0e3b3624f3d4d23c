//! The routes that create jobs: `POST /api/v1/jobs` (one), `/api/v1/jobs/batch` (all or
//! nothing), `/api/v1/documents/{id}/process` and `/api/v1/workflows/run` (conveniences over their
//! job kinds). Each reads its body, builds the Chatter body and hands it to `submit`; the batch
//! enqueues through the backend in one atomic step.
use super::submit::{build_job, check_length, idempotency_key, queue_problem, read_body, submit};
use super::{BatchCreate, BatchItem, BatchReply, DocumentProcess, JobCreate, JobView, WorkflowRun};
use crate::api::ApiState;
use crate::api::problem::{ApiResult, Problem, json_body};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chatter_jobs::kinds::{documents, workflows};
use serde_json::{Map, Value};

/// Create a job.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = JobCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first job (200)")),
    responses(
        (status = 201, description = "Enqueued", body = JobView),
        (status = 200, description = "An earlier job with the same Idempotency-Key", body = JobView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key's job ended and was removed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body or a field over its size limit (`[limits]`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let caller = s.caller(&headers)?;
    let idem = idempotency_key(&headers)?;
    check_length(&s, &headers)?;
    let body = read_body(&s, body).await?;
    let c: JobCreate = json_body(&headers, &body)?;
    submit(&s, &caller, c, idem).await
}

/// Create up to 10,000 jobs, all or nothing.
#[utoipa::path(post, path = "/api/v1/jobs/batch", tag = "jobs", request_body = BatchCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Job i gets key `<key>:<i>`")),
    responses(
        (status = 201, description = "Enqueued (all of them)", body = BatchReply),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn batch(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = s.caller(&headers)?;
    let idem = idempotency_key(&headers)?;
    let b: BatchCreate = json_body(&headers, &body)?;
    if b.jobs.is_empty() || b.jobs.len() > s.max_batch {
        return Err(Problem::field(
            "jobs",
            format!("{} jobs; a batch takes 1..={}", b.jobs.len(), s.max_batch),
        ));
    }
    let mut jobs = Vec::with_capacity(b.jobs.len());
    for (i, c) in b.jobs.into_iter().enumerate() {
        let key = idem.as_ref().map(|k| format!("{k}:{i}"));
        let at = format!("jobs[{i}].");
        jobs.push(build_job(&s, &caller, c, key, &at).await?);
    }
    let done = s
        .backend
        .enqueue_atomic(&s.options, &jobs)
        .await
        .map_err(|e| queue_problem(e, |i| format!("jobs[{i}].")))?;
    let created = done.iter().filter(|e| e.created).count();
    let reply = BatchReply {
        jobs: done
            .into_iter()
            .map(|e| BatchItem {
                id: e.id,
                created: e.created,
            })
            .collect(),
        created,
    };
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

/// Chunk and embed one document (a `chunk_document` job; the caller must own the document).
#[utoipa::path(post, path = "/api/v1/documents/{id}/process", tag = "documents",
    params(("id" = String, Path, description = "The document's ULID"),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first job (200)")),
    request_body(content = Option<DocumentProcess>),
    responses(
        (status = 201, description = "Enqueued", body = JobView),
        (status = 200, description = "An earlier job with the same Idempotency-Key", body = JobView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key's job ended and was removed", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn process_document(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let caller = s.caller(&headers)?;
    let idem = idempotency_key(&headers)?;
    check_length(&s, &headers)?;
    let body = read_body(&s, body).await?;
    let p: DocumentProcess = if body.is_empty() {
        DocumentProcess::default()
    } else {
        json_body(&headers, &body)?
    };
    if ulid::Ulid::from_string(&id).is_err() {
        return Err(Problem::field("id", format!("{id:?} is not a ULID")));
    }
    let args = documents::ChunkDocumentArgs {
        document_id: id,
        max_tokens: p.max_tokens,
        overlap_tokens: p.overlap_tokens,
    };
    let kwargs = match serde_json::to_value(&args) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let c = JobCreate::of(documents::CHUNK_DOCUMENT, kwargs, p.priority);
    submit(&s, &caller, c, idem).await
}

/// Run a workflow for the caller (a `run_workflow` job); its events and tokens are the caller's.
#[utoipa::path(post, path = "/api/v1/workflows/run", tag = "workflows", request_body = WorkflowRun,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated key returns the first job (200)")),
    responses(
        (status = 201, description = "Enqueued", body = JobView),
        (status = 200, description = "An earlier job with the same Idempotency-Key", body = JobView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key's job ended and was removed", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn run_workflow(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let caller = s.caller(&headers)?;
    let idem = idempotency_key(&headers)?;
    check_length(&s, &headers)?;
    let body = read_body(&s, body).await?;
    let w: WorkflowRun = json_body(&headers, &body)?;
    let mut kwargs = Map::new();
    if let Some(d) = w.definition {
        kwargs.insert("definition".into(), d);
    }
    if let Some(d) = w.definition_id {
        kwargs.insert("definition_id".into(), Value::String(d));
    }
    kwargs.insert("inputs".into(), Value::Object(w.inputs));
    if let Some(e) = w.execution_id {
        kwargs.insert("execution_id".into(), Value::String(e));
    }
    let c = JobCreate::of(workflows::RUN_WORKFLOW, kwargs, w.priority);
    submit(&s, &caller, c, idem).await
}
