//! `/api/v1/jobs`: Chatter's job routes (create, list, show, cancel, stats, cleanup) plus retry,
//! batch and per-queue stats, and the document and workflow conveniences over their job kinds.
use super::ApiState;
use super::problem::{ApiResult, Problem, json_body, query_pairs};
use crate::backend::{CancelResult, JobRecord, Queue, QueueStats};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chatter_jobs::kinds::{documents, workflows};
use chatter_jobs::{Job, Priority, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

pub(crate) mod submit;
use submit::{build_job, check_length, idempotency_key, queue_problem, read_body, rfc3339, submit};

/// Chatter's priorities: critical before high before normal before low, FIFO within one.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobPriority {
    Low,
    Normal,
    High,
    Critical,
}

impl From<JobPriority> for Priority {
    fn from(p: JobPriority) -> Self {
        match p {
            JobPriority::Low => Priority::Low,
            JobPriority::Normal => Priority::Normal,
            JobPriority::High => Priority::High,
            JobPriority::Critical => Priority::Critical,
        }
    }
}

/// Chatter's job statuses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Retrying,
}

/// `POST /api/v1/jobs`: Chatter's body. `kwargs` is checked against the kind's own arguments
/// (`chunk_document {document_id, ...}`, `embed_chunks {document_id, chunk_ids}`,
/// `run_workflow {definition | definition_id, inputs}`, the maintenance kinds `{}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCreate {
    /// A display name (default: the kind).
    #[schema(max_length = 255)]
    pub name: Option<String>,
    /// The job kind; an unknown kind is refused with the list of valid ones.
    pub function_name: String,
    #[serde(default)]
    pub args: Vec<Value>,
    #[serde(default)]
    pub kwargs: Map<String, Value>,
    pub priority: Option<JobPriority>,
    /// 0..=10, default 3.
    #[schema(minimum = 0, maximum = 10)]
    pub max_retries: Option<u32>,
    /// Base of the retry backoff in seconds (default 60): min(base · 2^(n-1), 3600) + jitter.
    #[schema(minimum = 0, maximum = 86400)]
    pub retry_delay: Option<u64>,
    /// Execution time limit in seconds (default 3600).
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout: Option<u64>,
    /// Run no earlier than this (RFC 3339).
    pub schedule_at: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// A job as Chatter shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub name: Option<String>,
    pub function_name: Option<String>,
    pub queue: String,
    pub args: Vec<Value>,
    #[schema(value_type = Object)]
    pub kwargs: Map<String, Value>,
    pub priority: String,
    pub status: String,
    pub created_at: Option<String>,
    pub scheduled_at: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub error_message: Option<String>,
    pub retry_count: u32,
    pub max_retries: u32,
    pub retry_delay: Option<u64>,
    pub timeout: Option<u64>,
    pub attempt: u32,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub progress: u8,
    pub progress_message: Option<String>,
    pub created_by_user_id: Option<String>,
}

impl JobView {
    /// A job just enqueued: pending, no attempt yet.
    pub fn created(job: Job) -> Self {
        Self {
            id: job.id.clone(),
            name: Some(job.name.clone()),
            function_name: Some(job.function_name.clone()),
            queue: job.queue.clone(),
            args: job.args,
            kwargs: job.kwargs,
            priority: job.priority.as_str().to_string(),
            status: "pending".into(),
            created_at: Some(job.created_at.rfc3339()),
            scheduled_at: job.scheduled_at.map(Timestamp::rfc3339),
            started_at: None,
            completed_at: None,
            error_message: None,
            retry_count: 0,
            max_retries: job.max_retries,
            retry_delay: Some(job.retry_delay),
            timeout: Some(job.timeout),
            attempt: 0,
            tags: job.tags,
            metadata: job.metadata,
            result: None,
            progress: 0,
            progress_message: None,
            created_by_user_id: job.created_by_user_id,
        }
    }

    pub fn from_record(r: JobRecord) -> Self {
        let ts = |t: Option<Timestamp>| t.map(Timestamp::rfc3339);
        let job = r.job;
        Self {
            name: r.name,
            function_name: r.function_name,
            queue: r.queue,
            args: job.as_ref().map(|j| j.args.clone()).unwrap_or_default(),
            kwargs: job.as_ref().map(|j| j.kwargs.clone()).unwrap_or_default(),
            priority: r.priority.to_string(),
            status: r.status.to_string(),
            created_at: ts(r.created_at),
            scheduled_at: ts(r.scheduled_at),
            started_at: ts(r.started_at),
            completed_at: ts(r.completed_at),
            error_message: r.error_message,
            retry_count: r.retry_count,
            max_retries: r.max_retries,
            retry_delay: job.as_ref().map(|j| j.retry_delay),
            timeout: job.as_ref().map(|j| j.timeout),
            attempt: r.attempt,
            tags: job.as_ref().map(|j| j.tags.clone()).unwrap_or_default(),
            metadata: job.as_ref().map(|j| j.metadata.clone()).unwrap_or_default(),
            result: r.result,
            progress: r.progress,
            progress_message: r.progress_message,
            created_by_user_id: r.owner,
            id: r.id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    pub total: u64,
    pub limit: usize,
    pub offset: usize,
    pub has_more: bool,
}

/// `GET /api/v1/jobs` query (Chatter's filters).
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQuery {
    status: Option<JobStatus>,
    priority: Option<JobPriority>,
    function_name: Option<String>,
    /// RFC 3339.
    created_after: Option<String>,
    /// RFC 3339.
    created_before: Option<String>,
    /// Jobs carrying every one of these tags (repeat the parameter or separate with commas).
    tags: Option<Vec<String>>,
    /// Case-insensitive substring of the id, name or kind.
    search: Option<String>,
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    #[param(minimum = 0, maximum = 100000)]
    offset: Option<usize>,
    /// created_at (default), started_at, completed_at, priority, status, name, function_name.
    sort_by: Option<String>,
    /// asc or desc (default).
    sort_order: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelReply {
    pub success: bool,
    pub message: String,
    pub job_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsOverview {
    pub total_jobs: u64,
    pub pending_jobs: u64,
    pub running_jobs: u64,
    pub completed_jobs: u64,
    pub failed_jobs: u64,
    pub queue_size: u64,
    pub active_workers: u64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    /// Also delete dead letters (failed jobs); without it only completed and cancelled records go.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CleanupReply {
    pub success: bool,
    pub message: String,
    pub removed_finished: u64,
    pub removed_dead: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreate {
    /// 1..=10,000 jobs (`[api] max_batch`), validated together: one bad job refuses the batch.
    pub jobs: Vec<JobCreate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    pub id: String,
    /// False when the job existed already (a repeated `Idempotency-Key`).
    pub created: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchReply {
    pub jobs: Vec<BatchItem>,
    pub created: usize,
}

/// `POST /api/v1/documents/{id}/process`: chunk (then embed) one document.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentProcess {
    pub max_tokens: Option<usize>,
    pub overlap_tokens: Option<usize>,
    pub priority: Option<JobPriority>,
}

/// `POST /api/v1/workflows/run`: run a definition (inline or stored) for the caller.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRun {
    #[schema(value_type = Option<Object>)]
    pub definition: Option<Value>,
    pub definition_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
    pub execution_id: Option<String>,
    pub priority: Option<JobPriority>,
}

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

struct Filters {
    status: Option<String>,
    priority: Option<String>,
    function_name: Option<String>,
    created: (u64, u64),
    tags: Vec<String>,
    search: Option<String>,
    limit: usize,
    offset: usize,
    sort_by: String,
    desc: bool,
}

impl Filters {
    fn parse(query: Option<&str>) -> ApiResult<Self> {
        let mut f = Filters {
            status: None,
            priority: None,
            function_name: None,
            created: ALL_TIME,
            tags: Vec::new(),
            search: None,
            limit: 20,
            offset: 0,
            sort_by: "created_at".into(),
            desc: true,
        };
        let num = |k: &str, v: &str, lo: usize, hi: usize| -> ApiResult<usize> {
            v.parse::<usize>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| Problem::field(k, format!("{v:?} is not an integer in {lo}..={hi}")))
        };
        for (k, v) in query_pairs(query)? {
            match k.as_str() {
                "status" => {
                    serde_json::from_value::<JobStatus>(Value::String(v.clone())).map_err(|_| {
                        Problem::field("status", format!("unknown status {v:?}: expected one of pending, running, completed, failed, cancelled, retrying"))
                    })?;
                    f.status = Some(v);
                }
                "priority" => {
                    v.parse::<Priority>()
                        .map_err(|e| Problem::field("priority", e))?;
                    f.priority = Some(v);
                }
                "function_name" => f.function_name = Some(v),
                "created_after" => f.created.0 = rfc3339("created_after", &v)?.millis(),
                "created_before" => f.created.1 = rfc3339("created_before", &v)?.millis(),
                "tags" => f.tags.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_string),
                ),
                "search" => f.search = Some(v.to_lowercase()).filter(|s| !s.is_empty()),
                "limit" => f.limit = num("limit", &v, 1, 100)?,
                "offset" => f.offset = num("offset", &v, 0, 100_000)?,
                "sort_by" => {
                    const SORTS: [&str; 7] = [
                        "created_at",
                        "started_at",
                        "completed_at",
                        "priority",
                        "status",
                        "name",
                        "function_name",
                    ];
                    if !SORTS.contains(&v.as_str()) {
                        return Err(Problem::field(
                            "sort_by",
                            format!("{v:?}: expected one of {}", SORTS.join(", ")),
                        ));
                    }
                    f.sort_by = v;
                }
                "sort_order" => {
                    f.desc = match v.as_str() {
                        "desc" => true,
                        "asc" => false,
                        _ => {
                            return Err(Problem::field(
                                "sort_order",
                                format!("{v:?}: expected asc or desc"),
                            ));
                        }
                    }
                }
                other => {
                    return Err(Problem::field(other, "unknown query parameter"));
                }
            }
        }
        Ok(f)
    }

    /// Only the index is needed: no filter on a job's fields, newest or oldest first.
    fn index_only(&self) -> bool {
        self.status.is_none()
            && self.priority.is_none()
            && self.function_name.is_none()
            && self.tags.is_empty()
            && self.search.is_none()
            && self.sort_by == "created_at"
    }

    fn matches(&self, r: &JobRecord) -> bool {
        let tags: &[String] = r.job.as_ref().map(|j| j.tags.as_slice()).unwrap_or(&[]);
        self.status.as_ref().is_none_or(|s| r.status == s.as_str())
            && self
                .priority
                .as_ref()
                .is_none_or(|p| r.priority == p.as_str())
            && self
                .function_name
                .as_ref()
                .is_none_or(|f| Some(f) == r.function_name.as_ref())
            && self.tags.iter().all(|t| tags.contains(t))
            && self.search.as_ref().is_none_or(|q| {
                r.id.to_lowercase().contains(q)
                    || r.name.as_deref().unwrap_or("").to_lowercase().contains(q)
                    || r.function_name
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains(q)
            })
    }
}

/// Every creation time (the `created` bounds of an unfiltered listing).
pub const ALL_TIME: (u64, u64) = (0, u64::MAX >> 11);

/// Index entries a filtered listing reads at most, across queues (newest first).
pub const MAX_SCAN: usize = 50_000;
const SCAN_CHUNK: usize = 500;

fn sort_key(r: &JobRecord, by: &str) -> (String, u64) {
    let t = |v: Option<Timestamp>| v.map_or(0, Timestamp::millis);
    match by {
        "started_at" => (String::new(), t(r.started_at)),
        "completed_at" => (String::new(), t(r.completed_at)),
        "priority" => {
            let rank = Priority::ALL
                .iter()
                .position(|x| *x == r.priority)
                .unwrap_or(2);
            (String::new(), 3 - rank as u64)
        }
        "status" => (r.status.to_string(), 0),
        "name" => (r.name.clone().unwrap_or_default(), 0),
        "function_name" => (r.function_name.clone().unwrap_or_default(), 0),
        _ => (String::new(), t(r.created_at)),
    }
}

/// The records a filtered listing looks at, at most `budget` (shared evenly by the queues; the
/// API gives [`MAX_SCAN`]): one owner's jobs created within
/// `created` (newest first, from the owner's index), or for admins every job of every state
/// (from the queues' state structures: running, ready, scheduled, retrying, newest dead and
/// finished), created within `created`.
pub async fn collect(
    queues: &[Arc<dyn Queue>],
    owner: Option<&str>,
    created: (u64, u64),
    budget: usize,
) -> ApiResult<Vec<JobRecord>> {
    let mut out = Vec::new();
    // Each queue gets its share of the budget (a big queue must not hide the others).
    let share = budget / queues.len().max(1);
    for q in queues {
        let budget = share;
        let ids: Vec<String> = match owner {
            Some(o) => {
                let mut ids = Vec::new();
                let mut offset = 0;
                while ids.len() < budget {
                    let n = SCAN_CHUNK.min(budget - ids.len());
                    let page = q.index_page(o, created, offset, n, true).await?;
                    offset += page.len();
                    let short = page.len() < n;
                    ids.extend(page.into_iter().map(|(id, _)| id));
                    if short {
                        break;
                    }
                }
                ids
            }
            None => q.scan_ids(budget).await?,
        };
        for chunk in ids.chunks(SCAN_CHUNK) {
            let recs = q.show_many(chunk).await?;
            if let Some(o) = owner {
                let gone: Vec<String> = chunk
                    .iter()
                    .zip(&recs)
                    .filter(|(_, r)| r.is_none())
                    .map(|(id, _)| id.clone())
                    .collect();
                q.unindex(o, &gone).await?;
            }
            out.extend(recs.into_iter().flatten().filter(|r| {
                let at = r.created_at.map_or(0, Timestamp::millis);
                (created.0..=created.1).contains(&at)
            }));
        }
    }
    Ok(out)
}

/// List jobs (the caller's; every job for an admin) with Chatter's filters and paging.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(ListQuery),
    responses(
        (status = 200, body = JobList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<ApiState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<JobList>> {
    let caller = s.caller(&headers)?;
    let f = Filters::parse(query.as_deref())?;
    let queues = s.queues().await?;
    let (jobs, total) = match caller.scope() {
        Some(owner) if f.index_only() => {
            // Total from the owner's indexes; the page from each queue's first offset+limit.
            let mut total = 0;
            let mut entries: Vec<(u64, String, usize)> = Vec::new();
            for (qi, q) in queues.iter().enumerate() {
                total += q.index_count(owner, f.created).await?;
                let page = q
                    .index_page(owner, f.created, 0, f.offset + f.limit, f.desc)
                    .await?;
                entries.extend(page.into_iter().map(|(id, at)| (at, id, qi)));
            }
            entries.sort();
            if f.desc {
                entries.reverse();
            }
            let page: Vec<_> = entries.into_iter().skip(f.offset).take(f.limit).collect();
            // One round trip per queue, then back in the page's order.
            let mut found: std::collections::HashMap<String, JobRecord> =
                std::collections::HashMap::new();
            for (qi, q) in queues.iter().enumerate() {
                let ids: Vec<String> = page
                    .iter()
                    .filter(|e| e.2 == qi)
                    .map(|e| e.1.clone())
                    .collect();
                let recs = q.show_many(&ids).await?;
                let mut gone = Vec::new();
                for (id, r) in ids.into_iter().zip(recs) {
                    match r {
                        Some(r) => {
                            found.insert(id, r);
                        }
                        None => gone.push(id),
                    }
                }
                q.unindex(owner, &gone).await?;
            }
            let jobs: Vec<JobRecord> = page
                .into_iter()
                .filter_map(|(_, id, _)| found.remove(&id))
                .collect();
            (jobs, total)
        }
        scope => {
            let mut matched: Vec<JobRecord> = collect(&queues, scope, f.created, MAX_SCAN)
                .await?
                .into_iter()
                .filter(|r| f.matches(r))
                .collect();
            matched.sort_by(|a, b| {
                let o = sort_key(a, &f.sort_by)
                    .cmp(&sort_key(b, &f.sort_by))
                    .then_with(|| a.id.cmp(&b.id));
                if f.desc { o.reverse() } else { o }
            });
            let total = matched.len() as u64;
            let jobs = matched.into_iter().skip(f.offset).take(f.limit).collect();
            (jobs, total)
        }
    };
    let has_more = (f.offset + jobs.len()) < total as usize;
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(JobView::from_record).collect(),
        total,
        limit: f.limit,
        offset: f.offset,
        has_more,
    }))
}

/// The queue holding job `id`, if the caller may see it (404 otherwise, also for another user's).
async fn locate(
    s: &ApiState,
    caller: &super::auth::Caller,
    id: &str,
) -> ApiResult<(Arc<dyn Queue>, JobRecord)> {
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
