//! PostgreSQL's workflows role: `workflow_definitions`, `workflow_executions`, the checkpoints
//! of `workflow_steps` and the memory of `workflow_memory`.
//!
//! Every write of a run is fenced by a condition on the execution's `fence` and `job_id`
//! columns, in the same statement as the write.
use super::Store;
use crate::store::workflows::{Begun, Ending, NewExecution, WorkflowStore};
use crate::store::{Result, StoreError};
use chatter_workflows::state::{Message, State};
use serde_json::Value;
use sqlx::Row;

#[async_trait::async_trait]
impl WorkflowStore for Store {
    async fn workflow_definition(&self, id: &str, owner: &str) -> Result<Option<Value>> {
        let row = sqlx::query(
            "SELECT name, nodes, edges, version FROM workflow_definitions
             WHERE id = $1 AND owner_id = $2",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<Value> {
            Ok(serde_json::json!({
                "name": r.try_get::<String, _>("name")?,
                "nodes": r.try_get::<Value, _>("nodes")?,
                "edges": r.try_get::<Value, _>("edges")?,
                "version": r.try_get::<i32, _>("version")?,
            }))
        })
        .transpose()
    }

    async fn put_workflow_definition(&self, owner: &str, def: &Value) -> Result<String> {
        let id = ulid::Ulid::new().to_string();
        sqlx::query(
            "INSERT INTO workflow_definitions (id, owner_id, name, nodes, edges)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(owner)
        .bind(
            def.get("name")
                .and_then(Value::as_str)
                .unwrap_or("workflow"),
        )
        .bind(def.get("nodes").cloned().unwrap_or(Value::Null))
        .bind(def.get("edges").cloned().unwrap_or(Value::Null))
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    async fn begin_execution(&self, e: &NewExecution<'_>) -> Result<Begun> {
        let taken = sqlx::query(
            "INSERT INTO workflow_executions (id, definition_id, owner_id, workflow_type,
                 workflow_config, status, started_at, input_data, job_id, fence)
             VALUES ($1, $2, $3, $4, $5, 'running', now(), $6, $7, $8)
             ON CONFLICT (id) DO UPDATE
                SET status = 'running', job_id = EXCLUDED.job_id, fence = EXCLUDED.fence,
                    started_at = COALESCE(workflow_executions.started_at, now()),
                    updated_at = now()
              WHERE workflow_executions.owner_id = EXCLUDED.owner_id
                AND (workflow_executions.job_id IS NULL
                     OR workflow_executions.job_id = EXCLUDED.job_id)
                AND workflow_executions.fence <= EXCLUDED.fence
                AND workflow_executions.status IN ('pending', 'running')
             RETURNING id",
        )
        .bind(e.id)
        .bind(e.definition_id)
        .bind(e.owner_id)
        .bind(e.workflow_type)
        .bind(e.config)
        .bind(e.inputs)
        .bind(e.job_id)
        .bind(e.fence)
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_none() {
            let row = sqlx::query(
                "SELECT owner_id, status, output_data, error_message, fence, job_id
                 FROM workflow_executions WHERE id = $1",
            )
            .bind(e.id)
            .fetch_one(&self.pool)
            .await?;
            let owner: String = row.try_get("owner_id")?;
            let status: String = row.try_get("status")?;
            let fence: i64 = row.try_get("fence")?;
            let job: Option<String> = row.try_get("job_id")?;
            if owner != e.owner_id {
                return Ok(Begun::Refused(format!(
                    "execution {} belongs to another owner",
                    e.id
                )));
            }
            if matches!(status.as_str(), "pending" | "running")
                && let Some(other) = job.filter(|j| j != e.job_id)
            {
                return Ok(Begun::Refused(format!(
                    "execution {} is being run by job {other}",
                    e.id
                )));
            }
            if matches!(status.as_str(), "pending" | "running") {
                return Ok(Begun::Refused(format!(
                    "execution {} is run by a newer claim ({fence} > {})",
                    e.id, e.fence
                )));
            }
            return Ok(Begun::Ended {
                status,
                output: row.try_get("output_data")?,
                error: row.try_get("error_message")?,
            });
        }
        let state: Option<Value> = sqlx::query_scalar(
            "SELECT state FROM workflow_steps WHERE execution_id = $1 ORDER BY step DESC LIMIT 1",
        )
        .bind(e.id)
        .fetch_optional(&self.pool)
        .await?;
        let checkpoint = state
            .map(|v| serde_json::from_value(v).map(Box::new))
            .transpose()
            .map_err(|err| {
                StoreError::Data(format!("execution {}: unreadable checkpoint: {err}", e.id))
            })?;
        Ok(Begun::Running { checkpoint })
    }

    async fn save_step(
        &self,
        execution: &str,
        job_id: &str,
        fence: i64,
        state: &State,
    ) -> Result<bool> {
        let last = state.log.last();
        let json = serde_json::to_value(state)
            .map_err(|e| StoreError::Data(format!("state does not serialize: {e}")))?;
        let done = sqlx::query(
            "WITH e AS (
                UPDATE workflow_executions
                   SET tokens_used = $8, cost = $9, updated_at = now()
                 WHERE id = $1 AND fence = $2 AND job_id = $11
                RETURNING id)
             INSERT INTO workflow_steps (execution_id, step, node_id, node_type, duration_ms,
                                         error, state)
             SELECT e.id, $3, $4, $5, $6, $7, $10 FROM e
             ON CONFLICT (execution_id, step) DO UPDATE
                SET node_id = EXCLUDED.node_id, node_type = EXCLUDED.node_type,
                    duration_ms = EXCLUDED.duration_ms, error = EXCLUDED.error,
                    state = EXCLUDED.state, created_at = now()",
        )
        .bind(execution)
        .bind(fence)
        .bind(state.step as i32)
        .bind(last.map(|l| l.node.as_str()))
        .bind(last.map(|l| l.kind.as_str()))
        .bind(last.map(|l| l.ms as i64))
        .bind(last.and_then(|l| l.error.as_deref()))
        .bind(state.tokens() as i64)
        .bind(state.cost)
        .bind(json)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn end_execution(
        &self,
        execution: &str,
        job_id: &str,
        fence: i64,
        end: &Ending<'_>,
    ) -> Result<bool> {
        let log = serde_json::to_value(&end.state.log).unwrap_or(Value::Null);
        let done = sqlx::query(
            "UPDATE workflow_executions
                SET status = $3, completed_at = now(),
                    execution_time_ms = (EXTRACT(EPOCH FROM now() - started_at) * 1000)::BIGINT,
                    output_data = $4, error_message = $5, execution_log = $6,
                    tokens_used = $7, cost = $8, updated_at = now()
              WHERE id = $1 AND fence = $2 AND job_id = $9",
        )
        .bind(execution)
        .bind(fence)
        .bind(end.status)
        .bind(end.output)
        .bind(end.error)
        .bind(log)
        .bind(end.state.tokens() as i64)
        .bind(end.state.cost)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn execution(&self, id: &str) -> Result<Option<Value>> {
        let row = sqlx::query(
            "SELECT id, definition_id, owner_id, workflow_type, status, input_data, output_data,
                    error_message, execution_log, tokens_used, cost, execution_time_ms, job_id,
                    (started_at IS NOT NULL) AS started, (completed_at IS NOT NULL) AS completed
             FROM workflow_executions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<Value> {
            Ok(serde_json::json!({
                "id": r.try_get::<String, _>("id")?,
                "definition_id": r.try_get::<Option<String>, _>("definition_id")?,
                "owner_id": r.try_get::<String, _>("owner_id")?,
                "workflow_type": r.try_get::<String, _>("workflow_type")?,
                "status": r.try_get::<String, _>("status")?,
                "input_data": r.try_get::<Option<Value>, _>("input_data")?,
                "output_data": r.try_get::<Option<Value>, _>("output_data")?,
                "error_message": r.try_get::<Option<String>, _>("error_message")?,
                "execution_log": r.try_get::<Value, _>("execution_log")?,
                "tokens_used": r.try_get::<i64, _>("tokens_used")?,
                "cost": r.try_get::<f64, _>("cost")?,
                "execution_time_ms": r.try_get::<Option<i64>, _>("execution_time_ms")?,
                "job_id": r.try_get::<Option<String>, _>("job_id")?,
                "started": r.try_get::<bool, _>("started")?,
                "completed": r.try_get::<bool, _>("completed")?,
            }))
        })
        .transpose()
    }

    async fn memory_load(&self, owner: &str, key: &str, window: usize) -> Result<Vec<Message>> {
        let rows = sqlx::query(
            "SELECT role, content FROM (
                SELECT id, role, content FROM workflow_memory
                 WHERE owner_id = $1 AND key = $2 ORDER BY id DESC LIMIT $3) m
             ORDER BY id",
        )
        .bind(owner)
        .bind(key)
        .bind(window as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Message::new(
                    &r.try_get::<String, _>("role")?,
                    r.try_get::<String, _>("content")?,
                ))
            })
            .collect()
    }

    async fn memory_store(&self, owner: &str, key: &str, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
        let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        sqlx::query(
            "INSERT INTO workflow_memory (owner_id, key, role, content)
             SELECT $1, $2, r, c FROM UNNEST($3::TEXT[], $4::TEXT[]) WITH ORDINALITY AS t(r, c, n)
             ORDER BY n",
        )
        .bind(owner)
        .bind(key)
        .bind(&roles)
        .bind(&contents)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn idle_executions(&self, idle_secs: f64, limit: i64) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT id, job_id FROM workflow_executions
              WHERE status IN ('pending', 'running') AND job_id IS NOT NULL
                AND updated_at < now() - make_interval(secs => $1)
              ORDER BY updated_at LIMIT $2",
        )
        .bind(idle_secs)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn close_execution(
        &self,
        id: &str,
        job_id: &str,
        status: &str,
        error: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE workflow_executions
                SET status = $3, error_message = $4, completed_at = now(),
                    execution_time_ms = (EXTRACT(EPOCH FROM now() - started_at) * 1000)::BIGINT,
                    updated_at = now()
              WHERE id = $1 AND job_id = $2 AND status IN ('pending', 'running')",
        )
        .bind(id)
        .bind(job_id)
        .bind(status)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
