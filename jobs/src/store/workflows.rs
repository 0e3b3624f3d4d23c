//! The workflows role: stored definitions, executions, the per-step checkpoints a run resumes
//! from, and the conversation memory of `memory` nodes; and the values these calls carry.
//!
//! Every write of a run is fenced: it counts only while the execution's fence is the claim
//! the writer runs under, so a worker that lost its claim (rescued elsewhere) cannot overwrite
//! the run that replaced it. The `run_workflow` handler and the reconciler use this role.
use super::Result;
use chatter_workflows::state::{Message, State};
use serde_json::Value;

/// What starting (or resuming) a run found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// Running under this claim: the last checkpoint, if any, to resume from.
    Running { checkpoint: Option<Box<State>> },
    /// The run had already ended (a job run again after its execution finished).
    Ended {
        status: String,
        output: Option<Value>,
        error: Option<String>,
    },
    /// A newer claim owns the run, or the execution belongs to another owner.
    Refused(String),
}

/// A new or resumed run.
#[derive(Debug, Clone)]
pub struct NewExecution<'a> {
    pub id: &'a str,
    pub definition_id: Option<&'a str>,
    pub owner_id: &'a str,
    pub workflow_type: &'a str,
    pub config: &'a Value,
    pub inputs: &'a Value,
    pub job_id: &'a str,
    pub fence: i64,
}

/// How a run ended, for its row.
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    pub status: &'a str,
    pub output: Option<&'a Value>,
    pub error: Option<&'a str>,
    pub state: &'a State,
}

/// Workflow definitions, executions, checkpoints and memory, as the `run_workflow` handler and
/// the reconciler need them.
#[async_trait::async_trait]
pub trait WorkflowStore: Send + Sync {
    /// A stored definition of `owner` as `{name, nodes, edges, version}`.
    async fn workflow_definition(&self, id: &str, owner: &str) -> Result<Option<Value>>;

    /// Store a definition (tests, the CLI); returns its id.
    async fn put_workflow_definition(&self, owner: &str, def: &Value) -> Result<String>;

    /// Create the execution, or take it over under a newer claim, and read its last
    /// checkpoint.
    async fn begin_execution(&self, e: &NewExecution<'_>) -> Result<Begun>;

    /// Checkpoint the run's state (step `state.step`), with its running totals on the
    /// execution. False when the claim was superseded: nothing was written.
    async fn save_step(
        &self,
        execution: &str,
        job_id: &str,
        fence: i64,
        state: &State,
    ) -> Result<bool>;

    /// Record how the run ended. False when the claim was superseded.
    async fn end_execution(
        &self,
        execution: &str,
        job_id: &str,
        fence: i64,
        end: &Ending<'_>,
    ) -> Result<bool>;

    /// The execution as JSON (status, times, output, error, log, tokens, cost).
    async fn execution(&self, id: &str) -> Result<Option<Value>>;

    /// The last `window` messages of an owner's conversation `key`, oldest first.
    async fn memory_load(&self, owner: &str, key: &str, window: usize) -> Result<Vec<Message>>;

    /// Append messages to an owner's conversation `key`.
    async fn memory_store(&self, owner: &str, key: &str, messages: &[Message]) -> Result<()>;

    /// Executions still `pending` / `running` with no write for `idle` seconds: (id, job id).
    async fn idle_executions(&self, idle_secs: f64, limit: i64) -> Result<Vec<(String, String)>>;

    /// End an execution whose job ended without its handler (cancelled while queued or
    /// snoozed, dead-lettered, gone). False when it was not still open under that job.
    async fn close_execution(
        &self,
        id: &str,
        job_id: &str,
        status: &str,
        error: &str,
    ) -> Result<bool>;
}
