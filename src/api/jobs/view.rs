//! Chatter's request and response shapes for the job routes: priorities and statuses, the body
//! of a job to create (one, a batch, a document to process, a workflow to run), a job as Chatter
//! shows it ([`JobView`], from an enqueued job or a stored record), lists, replies and stats.
//! Plain data with their OpenAPI schemas; the routes that take and give them are the siblings.
use crate::backend::JobRecord;
use chatter_jobs::{Job, Priority, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

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
