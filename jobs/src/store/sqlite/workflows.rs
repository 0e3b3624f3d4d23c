//! SQLite's workflows role, with the behaviour of `store::pg::workflows`:
//! `workflow_definitions`, `workflow_executions`, the checkpoints of `workflow_steps` and the
//! memory of `workflow_memory`. JSON columns are TEXT (parsed back, an unreadable value is a
//! `StoreError::Data` naming its row), times INTEGER milliseconds.
//!
//! Every write of a run is fenced by a condition on the execution's `fence` and `job_id`
//! columns, in the statement (or `BEGIN IMMEDIATE` transaction) that writes.
use super::{SqliteStore, now_ms};
use crate::store::workflows::{Begun, Ending, NewExecution, WorkflowStore};
use crate::store::{Result, StoreError};
use chatter_workflows::state::{Message, State};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// A JSON column of `row` read back (NULL → None).
fn json(row: &SqliteRow, column: &str, what: &str) -> Result<Option<Value>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Data(format!("{what}: unreadable JSON in {column}: {e}")))
    })
    .transpose()
}

/// A JSON value as stored.
fn text(v: &Value) -> String {
    v.to_string()
}

#[async_trait::async_trait]
impl WorkflowStore for SqliteStore {
    async fn workflow_definition(&self, id: &str, owner: &str) -> Result<Option<Value>> {
        let row = sqlx::query(
            "SELECT name, nodes, edges, version FROM workflow_definitions
             WHERE id = ?1 AND owner_id = ?2",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<Value> {
            let what = format!("workflow definition {id}");
            Ok(serde_json::json!({
                "name": r.try_get::<String, _>("name")?,
                "nodes": json(&r, "nodes", &what)?,
                "edges": json(&r, "edges", &what)?,
                "version": r.try_get::<i32, _>("version")?,
            }))
        })
        .transpose()
    }

    async fn put_workflow_definition(&self, owner: &str, def: &Value) -> Result<String> {
        let id = ulid::Ulid::new().to_string();
        sqlx::query(
            "INSERT INTO workflow_definitions (id, owner_id, name, nodes, edges)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&id)
        .bind(owner)
        .bind(
            def.get("name")
                .and_then(Value::as_str)
                .unwrap_or("workflow"),
        )
        .bind(text(def.get("nodes").unwrap_or(&Value::Null)))
        .bind(text(def.get("edges").unwrap_or(&Value::Null)))
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    async fn begin_execution(&self, e: &NewExecution<'_>) -> Result<Begun> {
        let taken = sqlx::query(concat!(
            "INSERT INTO workflow_executions (id, definition_id, owner_id, workflow_type,
                 workflow_config, status, started_at, input_data, job_id, fence)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running', ",
            now_ms!(),
            ", ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE
                SET status = 'running', job_id = excluded.job_id, fence = excluded.fence,
                    started_at = COALESCE(workflow_executions.started_at, ",
            now_ms!(),
            "), updated_at = ",
            now_ms!(),
            "
              WHERE workflow_executions.owner_id = excluded.owner_id
                AND (workflow_executions.job_id IS NULL
                     OR workflow_executions.job_id = excluded.job_id)
                AND workflow_executions.fence <= excluded.fence
                AND workflow_executions.status IN ('pending', 'running')
             RETURNING id"
        ))
        .bind(e.id)
        .bind(e.definition_id)
        .bind(e.owner_id)
        .bind(e.workflow_type)
        .bind(text(e.config))
        .bind(text(e.inputs))
        .bind(e.job_id)
        .bind(e.fence)
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_none() {
            let row = sqlx::query(
                "SELECT owner_id, status, output_data, error_message, fence, job_id
                 FROM workflow_executions WHERE id = ?1",
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
                output: json(&row, "output_data", &format!("execution {}", e.id))?,
                error: row.try_get("error_message")?,
            });
        }
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state FROM workflow_steps WHERE execution_id = ?1 ORDER BY step DESC LIMIT 1",
        )
        .bind(e.id)
        .fetch_optional(&self.pool)
        .await?;
        let checkpoint = state
            .map(|v| serde_json::from_str(&v).map(Box::new))
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
        let json = serde_json::to_string(state)
            .map_err(|e| StoreError::Data(format!("state does not serialize: {e}")))?;
        let mut tx = self.write().await?;
        let owned = sqlx::query(concat!(
            "UPDATE workflow_executions SET tokens_used = ?4, cost = ?5, updated_at = ",
            now_ms!(),
            " WHERE id = ?1 AND fence = ?2 AND job_id = ?3"
        ))
        .bind(execution)
        .bind(fence)
        .bind(job_id)
        .bind(state.tokens() as i64)
        .bind(state.cost)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !owned {
            return Ok(false);
        }
        let done = sqlx::query(concat!(
            "INSERT INTO workflow_steps (execution_id, step, node_id, node_type, duration_ms,
                                         error, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (execution_id, step) DO UPDATE
                SET node_id = excluded.node_id, node_type = excluded.node_type,
                    duration_ms = excluded.duration_ms, error = excluded.error,
                    state = excluded.state, created_at = ",
            now_ms!()
        ))
        .bind(execution)
        .bind(state.step as i32)
        .bind(last.map(|l| l.node.as_str()))
        .bind(last.map(|l| l.kind.as_str()))
        .bind(last.map(|l| l.ms as i64))
        .bind(last.and_then(|l| l.error.as_deref()))
        .bind(json)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
        let done = sqlx::query(concat!(
            "UPDATE workflow_executions
                SET status = ?3, completed_at = ",
            now_ms!(),
            ", execution_time_ms = ",
            now_ms!(),
            " - started_at,
                    output_data = ?4, error_message = ?5, execution_log = ?6,
                    tokens_used = ?7, cost = ?8, updated_at = ",
            now_ms!(),
            " WHERE id = ?1 AND fence = ?2 AND job_id = ?9"
        ))
        .bind(execution)
        .bind(fence)
        .bind(end.status)
        .bind(end.output.map(text))
        .bind(end.error)
        .bind(text(&log))
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
             FROM workflow_executions WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<Value> {
            let what = format!("execution {id}");
            Ok(serde_json::json!({
                "id": r.try_get::<String, _>("id")?,
                "definition_id": r.try_get::<Option<String>, _>("definition_id")?,
                "owner_id": r.try_get::<String, _>("owner_id")?,
                "workflow_type": r.try_get::<String, _>("workflow_type")?,
                "status": r.try_get::<String, _>("status")?,
                "input_data": json(&r, "input_data", &what)?,
                "output_data": json(&r, "output_data", &what)?,
                "error_message": r.try_get::<Option<String>, _>("error_message")?,
                "execution_log": json(&r, "execution_log", &what)?.unwrap_or(Value::Null),
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
                 WHERE owner_id = ?1 AND key = ?2 ORDER BY id DESC LIMIT ?3) m
             ORDER BY id",
        )
        .bind(owner)
        .bind(key)
        .bind(i64::try_from(window).unwrap_or(i64::MAX))
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
        let mut tx = self.write().await?;
        for m in messages {
            sqlx::query(
                "INSERT INTO workflow_memory (owner_id, key, role, content)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(owner)
            .bind(key)
            .bind(&m.role)
            .bind(&m.content)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn idle_executions(&self, idle_secs: f64, limit: i64) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(concat!(
            "SELECT id, job_id FROM workflow_executions
              WHERE status IN ('pending', 'running') AND job_id IS NOT NULL
                AND updated_at < ",
            now_ms!(),
            " - CAST(?1 * 1000 AS INTEGER)
              ORDER BY updated_at LIMIT ?2"
        ))
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
        let done = sqlx::query(concat!(
            "UPDATE workflow_executions
                SET status = ?3, error_message = ?4, completed_at = ",
            now_ms!(),
            ", execution_time_ms = ",
            now_ms!(),
            " - started_at, updated_at = ",
            now_ms!(),
            " WHERE id = ?1 AND job_id = ?2 AND status IN ('pending', 'running')"
        ))
        .bind(id)
        .bind(job_id)
        .bind(status)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
