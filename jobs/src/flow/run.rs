//! One `run_workflow` job, start to end: find and validate the definition, begin (or resume)
//! its execution under the job's claim, run the engine from the last checkpoint with the
//! token events streamed to the owner, then record how the run ended and map it to the job's
//! outcome (completed, failed, cancelled, retried from the checkpoint, or snoozed).
use super::Runner;
use super::labels::{WORKFLOW_LABELS, bounded, label};
use super::services::Run;
use crate::kinds::workflows::{RunWorkflowArgs, check_run};
use crate::store::workflows::{Begun, Ending, NewExecution};
use crate::{Job, JobContext, JobError};
use chatter_workflows::Definition;
use chatter_workflows::engine::{Engine, Limits, RunOutcome};
use chatter_workflows::state::State;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

impl Runner {
    /// The definition a job names, with its workflow type and definition id.
    async fn definition(&self, a: &RunWorkflowArgs) -> Result<(Value, &'static str), JobError> {
        match (&a.definition, &a.definition_id) {
            (Some(d), _) => Ok((d.clone(), "custom")),
            (None, Some(id)) => match self.store.workflow_definition(id, &a.owner).await {
                Ok(Some(d)) => Ok((d, "definition")),
                Ok(None) => Err(JobError::Fatal(format!(
                    "no workflow definition {id:?} of owner {:?}",
                    a.owner
                ))),
                Err(e) => Err(JobError::Retry(e.to_string())),
            },
            (None, None) => Err(JobError::Fatal(
                "`definition` or `definition_id` is required".into(),
            )),
        }
    }

    pub async fn run(&self, job: Job, ctx: JobContext) -> Result<Value, JobError> {
        check_run(&job).map_err(JobError::Fatal)?;
        let args: RunWorkflowArgs = job.kwargs_as().map_err(JobError::Fatal)?;
        let (def_json, workflow_type) = self.definition(&args).await?;
        let def: Definition = serde_json::from_value(def_json.clone()).map_err(|e| {
            JobError::Fatal(format!("`definition` is not a workflow definition: {e}"))
        })?;
        let workflow = chatter_workflows::validate(&def)
            .map_err(|e| JobError::Fatal(format!("`definition`: {e}")))?;
        let execution = args.execution_id.clone().unwrap_or_else(|| job.id.clone());
        let fence = ctx.fence as i64;
        let inputs = if args.inputs.is_null() {
            json!({})
        } else {
            args.inputs.clone()
        };
        let begun = self
            .store
            .begin_execution(&NewExecution {
                id: &execution,
                definition_id: args.definition_id.as_deref(),
                owner_id: &args.owner,
                workflow_type,
                config: &def_json,
                inputs: &inputs,
                job_id: &job.id,
                fence,
            })
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let checkpoint = match begun {
            Begun::Running { checkpoint } => checkpoint,
            Begun::Ended {
                status,
                output,
                error,
            } => {
                return match status.as_str() {
                    "completed" => Ok(output.unwrap_or(Value::Null)),
                    "cancelled" => Err(JobError::Cancelled),
                    _ => Err(JobError::Fatal(error.unwrap_or(status))),
                };
            }
            Begun::Refused(why) => return Err(JobError::Fatal(why)),
        };
        let resumed = checkpoint.is_some();
        let mut state = checkpoint.map_or_else(|| State::new(inputs, workflow.start), |c| *c);
        let spent: u64 = state.log.iter().map(|l| l.ms).sum();
        let s = &self.settings;
        let limits = Limits {
            deadline: Instant::now()
                + s.execution_timeout
                    .saturating_sub(Duration::from_millis(spent)),
            step_timeout: s.step_timeout,
            token_budget: s.token_budget,
            inline_delay: s.inline_delay,
            max_steps: s.max_steps,
        };
        let name = label(&def.name);
        tracing::debug!(%execution, workflow = %name, resumed, step = state.step, "workflow run starts");

        // Tokens go out in order through one task, so a slow publish never stalls the stream.
        let (tokens, mut rx) = mpsc::unbounded_channel::<(String, u64, String)>();
        let outbox = self.outbox.clone();
        // `attempt` and `call` tell a consumer when a node's answer starts over (a retried
        // call streams again from its first token).
        let base = json!({
            "type": "workflow.token",
            "owner_id": args.owner,
            "job_id": job.id,
            "execution_id": execution,
            "attempt": ctx.attempt,
        });
        let publisher = tokio::spawn(async move {
            while let Some((node, call, delta)) = rx.recv().await {
                let mut e = base.clone();
                e["node"] = json!(node);
                e["call"] = json!(call);
                e["delta"] = json!(delta);
                if let Err(err) = outbox.publish(e).await {
                    tracing::debug!(error = %err, "token event not published");
                }
            }
        });
        let run = Run {
            runner: self,
            owner: &args.owner,
            execution: &execution,
            fence,
            workflow: &workflow,
            ctx: &ctx,
            tokens,
            calls: AtomicU64::new(0),
            logged: AtomicUsize::new(state.log.len()),
            job_id: &job.id,
        };
        let engine = Engine {
            workflow: &workflow,
            services: &run,
            checkpoints: &run,
            limits,
            cancel: ctx.cancel.clone(),
        };
        let outcome = engine.run(&mut state).await;
        run.record_nodes(&state);
        drop(run);
        let _ = publisher.await;

        let label_outcome = match &outcome {
            RunOutcome::Completed => "completed",
            RunOutcome::Failed(_) => "failed",
            RunOutcome::Cancelled if ctx.cancelled_by_user() => "cancelled",
            RunOutcome::Cancelled => "interrupted",
            RunOutcome::Retry(_) => "retried",
            RunOutcome::Wait(_) => "waiting",
        };
        metrics::counter!("chatter_workflow_runs_total", "workflow" => bounded(&WORKFLOW_LABELS, &name), "outcome" => label_outcome)
            .increment(1);
        let output = output(&state);
        let end = |status: &'static str, error: Option<String>| {
            let store = self.store.clone();
            let execution = execution.clone();
            let job_id = job.id.clone();
            let output = output.clone();
            let state = &state;
            async move {
                let ending = Ending {
                    status,
                    output: Some(&output),
                    error: error.as_deref(),
                    state,
                };
                match store
                    .end_execution(&execution, &job_id, fence, &ending)
                    .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(JobError::Fatal(format!(
                        "execution {execution} is run by a newer claim"
                    ))),
                    Err(e) => Err(JobError::Retry(e.to_string())),
                }
            }
        };
        match outcome {
            RunOutcome::Completed => {
                end("completed", None).await?;
                Ok(output)
            }
            RunOutcome::Failed(m) => {
                end("failed", Some(m.clone())).await?;
                Err(JobError::Fatal(m))
            }
            RunOutcome::Cancelled if ctx.cancelled_by_user() => {
                // The job ends cancelled whatever happens here (the reconciler finishes a row
                // this write missed).
                if let Err(e) = end("cancelled", Some("cancelled".into())).await {
                    tracing::warn!(%execution, error = %e, "cancelled run not recorded");
                }
                Err(JobError::Cancelled)
            }
            // Shutdown or a lost claim: the run resumes from its checkpoint elsewhere.
            RunOutcome::Cancelled => Err(JobError::Retry(
                "interrupted (shutdown or lost claim); resumes from its last checkpoint".into(),
            )),
            RunOutcome::Retry(m) => {
                // The failed try's log entry (and its time, which the execution timeout
                // counts) is kept; the state is as before the node, which runs again.
                if let Err(e) = self
                    .store
                    .save_step(&execution, &job.id, fence, &state)
                    .await
                {
                    tracing::debug!(%execution, error = %e, "failed try not checkpointed");
                }
                if ctx.attempt >= job.max_attempts() {
                    end("failed", Some(format!("{m} (attempts spent)"))).await?;
                }
                Err(JobError::Retry(m))
            }
            RunOutcome::Wait(d) => Err(JobError::Snooze(d)),
        }
    }
}

/// An execution's output (Chatter's shape).
fn output(s: &State) -> Value {
    json!({
        "response": s.response,
        "execution_time_ms": s.log.iter().map(|l| l.ms).sum::<u64>(),
        "tokens_used": s.tokens(),
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "cost": s.cost,
        "tool_calls": s.tool_calls,
        "errors": s.errors,
        "variables": s.variables,
    })
}
