//! The API's one submit path: read a bounded body, build a job for the caller, check it, enqueue.
//!
//! Receives a [`JobCreate`] (from `POST /api/v1/jobs`, the batch route, or the document and
//! workflow conveniences) and the caller. Checks run cheapest and most fundamental first: the kind
//! exists (422), the caller may enqueue it (403, before anything about its arguments), the
//! envelope's fields (422), the size limits and scheduling horizon (413 / 422, the same
//! `JobLimits` the queue checks again for every producer), the kind's own argument check (422),
//! then a user's document ownership (404). Hands the job to the queue; errors are problems whose
//! `errors` name the field with the request's path (`kwargs.inputs`, `jobs[3].kwargs`).
use super::{JobCreate, JobPriority, JobView};
use crate::api::ApiState;
use crate::api::auth::Caller;
use crate::api::problem::{ApiResult, FieldError, Problem};
use crate::backend::QueueError;
use crate::submit::{SubmitError, check_job};
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatter_jobs::kinds::{documents, workflows};
use chatter_jobs::{Job, JobBuilder, LimitError, Timestamp};
use serde_json::{Map, Value};

const IDEMPOTENCY: &str = "idempotency-key";

/// Room for a request's own framing around the largest job (names, priority, whitespace).
const BODY_SLACK: usize = 64 * 1024;

pub(super) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get(IDEMPOTENCY) else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .map_err(|_| Problem::field("Idempotency-Key", "must be visible ASCII"))?;
    if k.is_empty() || k.len() > 180 {
        return Err(Problem::field(
            "Idempotency-Key",
            "must be 1..=180 characters",
        ));
    }
    Ok(Some(k.to_string()))
}

/// An RFC 3339 date-time with any offset (`Z`, `+02:00`: Python's `isoformat()`).
pub(super) fn rfc3339(field: &str, v: &str) -> ApiResult<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .map(Timestamp)
        .ok_or_else(|| Problem::field(field, format!("{v:?} is not an RFC 3339 date-time")))
}

/// A single job's request body, read up to the largest job the limits allow (plus framing):
/// one job can never need more, so a larger body is refused before it is held in memory.
/// (The batch route reads up to `[api] max_body_mb`, which the config keeps at least as large.)
pub(super) async fn read_body(
    s: &ApiState,
    body: axum::body::Body,
) -> ApiResult<axum::body::Bytes> {
    let limit = (s.options.limits.largest_job_bytes() as usize).saturating_add(BODY_SLACK);
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| body_too_large(limit))
}

/// The most a request that carries at most one job may send: the largest job plus framing.
pub(crate) fn single_job_body_limit(s: &ApiState) -> usize {
    (s.options.limits.largest_job_bytes() as usize).saturating_add(BODY_SLACK)
}

/// A body refused by its announced length, before reading it.
pub(crate) fn check_length(s: &ApiState, headers: &HeaderMap) -> ApiResult<()> {
    let limit = single_job_body_limit(s);
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match announced {
        Some(n) if n > limit => Err(too_large(
            "body",
            format!("is {n} bytes, over the limit of {limit} bytes for one job's request"),
        )),
        _ => Ok(()),
    }
}

fn body_too_large(limit: usize) -> Problem {
    too_large(
        "body",
        format!("is over the limit of {limit} bytes for one job's request"),
    )
}

/// 413 naming the field.
fn too_large(field: impl Into<String>, message: impl Into<String>) -> Problem {
    let (field, message) = (field.into(), message.into());
    let mut p = Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("{field}: {message}"));
    p.errors.push(FieldError { field, message });
    p
}

/// A limit breach as the API shows it: 413 for a size, 422 for `schedule_at`, the field named
/// with the request's path (`at` in front; the whole job is `body`, or `jobs[i]` in a batch).
fn limit_problem(e: &LimitError, at: &str) -> Problem {
    match e {
        LimitError::TooLarge {
            field,
            kind,
            limit,
            actual,
        } => {
            let name = match (*field, at) {
                ("job", "") => "body".to_string(),
                ("job", at) => at.trim_end_matches('.').to_string(),
                (f, at) => format!("{at}{f}"),
            };
            too_large(
                name,
                format!(
                    "is {actual} bytes as JSON, over the limit of {limit} bytes for job kind {kind:?}"
                ),
            )
        }
        LimitError::TooFar {
            at: when,
            ahead_days,
            horizon_days,
        } => Problem::field(
            format!("{at}schedule_at"),
            format!(
                "{when} is {ahead_days:.1} days ahead, beyond the scheduling horizon of {horizon_days:.1} days"
            ),
        ),
    }
}

/// A queue error as a problem: the checks the queue repeats are the caller's fault (413 / 422,
/// `at` names the batch's job), anything else is the queue being away (503).
pub(super) fn queue_problem(e: QueueError, at: impl Fn(usize) -> String) -> Problem {
    match e {
        QueueError::Limit { index, error, .. } => limit_problem(&error, &at(index)),
        QueueError::Invalid(e) => Problem::field(e.field, e.message),
        other => other.into(),
    }
}

/// A caller's idempotency key as stored: scoped to the caller, so one user's key can neither
/// return nor block another user's job.
fn scoped_key(caller: &Caller, key: &str) -> String {
    format!(
        "api:{}",
        crate::api::auth::hash_key(&format!("{}\n{key}", caller.user))
    )
}

/// May this caller enqueue this kind at all? Kinds outside `[api] user_kinds` are for admins.
/// Checked before anything about the job's arguments: a forbidden kind is 403, however bad its
/// kwargs.
fn check_kind(s: &ApiState, caller: &Caller, kind: &str, at: &str) -> ApiResult<()> {
    if caller.admin || s.user_kinds.iter().any(|k| k == kind) {
        return Ok(());
    }
    Err(Problem::forbidden(format!(
        "{at}function_name: {kind:?} is for admins; users may enqueue {}",
        s.user_kinds.join(", ")
    )))
}

/// A user's `chunk_document` must name a document they own (without a database to ask, it is
/// refused).
async fn check_owner(s: &ApiState, caller: &Caller, job: &Job) -> ApiResult<()> {
    if caller.admin || job.function_name != documents::CHUNK_DOCUMENT {
        return Ok(());
    }
    let id = job
        .kwargs
        .get("document_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    check_document(s, caller, id).await
}

/// The caller owns document `id` (admins: any); 404 otherwise, also when there is no database.
async fn check_document(s: &ApiState, caller: &Caller, id: &str) -> ApiResult<()> {
    if caller.admin {
        return Ok(());
    }
    let not_found = || Problem::not_found(format!("no document {id}"));
    let store = s.store.as_ref().ok_or_else(not_found)?;
    let doc = store
        .document(id)
        .await
        .map_err(|e| Problem::unavailable(format!("the database is unavailable: {e}")))?;
    match doc {
        Some(d) if d.owner_id == caller.user => Ok(()),
        _ => Err(not_found()),
    }
}

/// Build and check one job for `caller`; field names in errors get `at` in front.
pub(super) async fn build_job(
    s: &ApiState,
    caller: &Caller,
    c: JobCreate,
    idem: Option<String>,
    at: &str,
) -> ApiResult<Job> {
    let f = |name: &str| format!("{at}{name}");
    let spec = s
        .registry
        .resolve(&c.function_name)
        .map_err(|e| Problem::field(f("function_name"), e.to_string()))?;
    check_kind(s, caller, &c.function_name, at)?;
    let mut kwargs = c.kwargs;
    // A workflow runs as its caller: its memory, documents and events are the caller's.
    if c.function_name == workflows::RUN_WORKFLOW {
        match kwargs.get("owner") {
            None => {
                kwargs.insert("owner".into(), Value::String(caller.user.clone()));
            }
            Some(Value::String(o)) if *o == caller.user || caller.admin => {}
            Some(_) => {
                return Err(Problem::field(
                    f("kwargs.owner"),
                    "must be your own user id (or left out)",
                ));
            }
        }
    }
    let mut b = JobBuilder::new(&c.function_name, &spec.queue)
        .kwargs(kwargs)
        .priority(c.priority.map(Into::into).unwrap_or_default())
        .owner(caller.user.clone())
        .tags(c.tags.clone());
    if let Some(n) = c.name {
        b = b.name(n);
    }
    if let Some(n) = c.max_retries {
        if n > chatter_jobs::envelope::MAX_RETRIES_LIMIT {
            return Err(Problem::field(
                f("max_retries"),
                format!("{n} is outside 0..=10"),
            ));
        }
        b = b.max_retries(n);
    }
    if let Some(d) = c.retry_delay {
        if d > 86_400 {
            return Err(Problem::field(
                f("retry_delay"),
                format!("{d} is outside 0..=86400"),
            ));
        }
        b = b.retry_delay(d);
    }
    if let Some(t) = c.timeout {
        if !(1..=604_800).contains(&t) {
            return Err(Problem::field(
                f("timeout"),
                format!("{t} is outside 1..=604800"),
            ));
        }
        b = b.timeout(t);
    }
    if let Some(at_) = &c.schedule_at {
        b = b.scheduled_at(rfc3339(&f("schedule_at"), at_)?);
    }
    if c.tags.len() > 50 {
        return Err(Problem::field(f("tags"), "at most 50 tags"));
    }
    if let Some(t) = c.tags.iter().find(|t| t.is_empty() || t.len() > 100) {
        return Err(Problem::field(
            f("tags"),
            format!("tag {t:?} must be 1..=100 bytes"),
        ));
    }
    if let Some(k) = idem {
        b = b.idempotency_key(scoped_key(caller, &k));
    }
    let mut job = b.build();
    job.args = c.args;
    job.metadata = c.metadata;
    // The checks every producer's jobs pass (crate::submit), after the caller's permission.
    check_job(&s.registry, &s.options.limits, &job, 0, Timestamp::now()).map_err(|e| match e {
        SubmitError::Invalid(e) => Problem::field(f(e.field), e.message),
        SubmitError::Limit { error, .. } => limit_problem(&error, at),
        SubmitError::Args { message, .. } => Problem::field(f("kwargs"), message),
        SubmitError::UnknownKind(e) => Problem::field(f("function_name"), e.to_string()),
        other => Problem::field(f("function_name"), other.to_string()),
    })?;
    check_owner(s, caller, &job).await?;
    Ok(job)
}

/// Enqueue one job; 201 with the job, or 200 with the existing one for a repeated key.
async fn enqueue_one(s: &ApiState, caller: &Caller, job: Job) -> ApiResult<Response> {
    let q = s.queue(&job.queue);
    let r = q
        .enqueue(&job)
        .await
        .map_err(|e| queue_problem(e, |_| String::new()))?;
    if r.created {
        // Just written: the view follows from the job itself, no second round trip.
        return Ok((StatusCode::CREATED, Json(JobView::created(job))).into_response());
    }
    // An idempotency hit on a job whose record is gone already (finished and removed): the key
    // still holds, so nothing is enqueued again.
    let rec = q
        .show(&r.id)
        .await?
        .filter(|rec| caller.may_see(rec.owner.as_deref()))
        .ok_or_else(|| {
            Problem::conflict(format!(
                "Idempotency-Key matched job {}, which has ended and whose record was removed",
                r.id
            ))
        })?;
    let mut resp = (StatusCode::OK, Json(JobView::from_record(rec))).into_response();
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(resp)
}

impl JobCreate {
    /// A job of `kind` with these arguments and Chatter's defaults for the rest.
    pub(super) fn of(
        kind: &str,
        kwargs: Map<String, Value>,
        priority: Option<JobPriority>,
    ) -> Self {
        Self {
            name: None,
            function_name: kind.into(),
            args: Vec::new(),
            kwargs,
            priority,
            max_retries: None,
            retry_delay: None,
            timeout: None,
            schedule_at: None,
            tags: Vec::new(),
            metadata: Map::new(),
        }
    }
}

/// Build, check and enqueue one job for the caller.
pub(super) async fn submit(
    s: &ApiState,
    caller: &Caller,
    c: JobCreate,
    idem: Option<String>,
) -> ApiResult<Response> {
    let job = build_job(s, caller, c, idem, "").await?;
    enqueue_one(s, caller, job).await
}
