//! A jobs-table row as operators see it ([`JobRecord`], built as `crate::queue::admin` builds
//! it from a Redis hash), and one raw field under the Redis hash's field names (diagnostics).
//! Text is read as bytes: a value that is not UTF-8 (written by hand) is shown lossily and named
//! in `lossy_fields`, never an error.
use super::SqliteQueue;
use crate::backend::{JobRecord, Result};
use chatter_jobs::{Job, Priority, Status, Timestamp};
use serde_json::Value as Json;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// The columns [`record`] reads, text as bytes.
pub(super) const COLUMNS: &str = "id, status, priority, fence, attempt, max_attempts, \
    started_ms, finished_ms, progress, CAST(payload AS BLOB) AS payload, \
    CAST(progress_message AS BLOB) AS progress_message, CAST(error AS BLOB) AS error, \
    CAST(history AS BLOB) AS history, CAST(result AS BLOB) AS result, \
    CAST(worker AS BLOB) AS worker, CAST(owner AS BLOB) AS owner";

/// The status a stored status shows as (a scheduled job is pending).
pub(super) fn shown_status(stored: &str) -> &str {
    if stored == "scheduled" {
        "pending"
    } else {
        stored
    }
}

/// A text column read as bytes, lossily, naming it in `lossy` when it was not UTF-8.
fn text(row: &SqliteRow, col: &str, lossy: &mut Vec<String>) -> Option<String> {
    let bytes: Option<Vec<u8>> = row.try_get(col).ok().flatten();
    bytes.map(|b| match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => {
            lossy.push(col.to_string());
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    })
}

fn int(row: &SqliteRow, col: &str) -> i64 {
    row.try_get::<Option<i64>, _>(col)
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn ts(row: &SqliteRow, col: &str) -> Option<Timestamp> {
    Some(int(row, col))
        .filter(|v| *v > 0)
        .map(|v| Timestamp(v as u64))
}

impl SqliteQueue {
    /// A row selected with [`COLUMNS`] as a [`JobRecord`]; `job: None` with `payload_error`
    /// and `raw_payload` when the payload does not decode as an envelope.
    pub(super) fn record(&self, row: &SqliteRow) -> JobRecord {
        let mut lossy = Vec::new();
        let id = text(row, "id", &mut lossy).unwrap_or_default();
        let raw = text(row, "payload", &mut lossy).unwrap_or_default();
        let (job, payload_error) = match Job::decode(raw.as_bytes()) {
            Ok(j) if !lossy.iter().any(|f| f == "payload") => (Some(j), None),
            Ok(_) => (None, Some("payload is not UTF-8".to_string())),
            Err(e) => (None, Some(e.to_string())),
        };
        let history: Json = text(row, "history", &mut lossy)
            .and_then(|s| serde_json::from_str(&s).ok())
            .filter(Json::is_array)
            .unwrap_or(Json::Array(vec![]));
        let failures = history.as_array().map(|a| a.len()).unwrap_or(0) as u32;
        let stored = text(row, "status", &mut lossy).unwrap_or_default();
        let mut marks = Vec::new();
        let status = shown_status(&stored).parse::<Status>().unwrap_or_else(|_| {
            marks.push(format!("[status unreadable: {stored:?}]"));
            Status::Failed
        });
        let p = int(row, "priority");
        let priority = usize::try_from(p)
            .ok()
            .and_then(|i| Priority::ALL.get(i).copied())
            .unwrap_or_else(|| {
                marks.push(format!("[priority unreadable: {p}]"));
                Priority::Normal
            });
        lossy.sort();
        if !lossy.is_empty() {
            marks.insert(
                0,
                format!("[not UTF-8, shown lossily: {}]", lossy.join(", ")),
            );
        }
        let mut error_message = text(row, "error", &mut lossy).filter(|e| !e.is_empty());
        if !marks.is_empty() {
            let mark = marks.join(" ");
            error_message = Some(match error_message {
                Some(e) => format!("{e} {mark}"),
                None => mark,
            });
        }
        let result = text(row, "result", &mut lossy)
            .map(|r| serde_json::from_str(&r).unwrap_or(Json::String(r)));
        JobRecord {
            id,
            queue: self.name.clone(),
            name: job.as_ref().map(|j| j.name.clone()),
            function_name: job.as_ref().map(|j| j.function_name.clone()),
            status,
            priority,
            created_at: job.as_ref().map(|j| j.created_at),
            scheduled_at: job.as_ref().and_then(|j| j.scheduled_at),
            started_at: ts(row, "started_ms"),
            completed_at: ts(row, "finished_ms"),
            error_message,
            retry_count: failures,
            max_retries: (int(row, "max_attempts").clamp(0, u32::MAX as i64) as u32)
                .saturating_sub(1),
            attempt: int(row, "attempt").clamp(0, u32::MAX as i64) as u32,
            fence: int(row, "fence").max(0) as u64,
            result,
            progress: int(row, "progress").clamp(0, 100) as u8,
            progress_message: text(row, "progress_message", &mut lossy),
            worker: text(row, "worker", &mut lossy),
            owner: text(row, "owner", &mut lossy),
            history,
            raw_payload: payload_error.as_ref().map(|_| raw.clone()),
            job,
            payload_error,
            lossy_fields: lossy,
        }
    }

    /// One raw field of a job under the Redis hash's field names (`status`, `priority`, `fence`,
    /// `attempt`, `max_attempts`, `payload`, `enqueued_at`, `run_at`, `started_at`,
    /// `completed_at`, `owner` = the worker, `user` = the owner, `cancel`, `error`, `history`,
    /// `result`, `progress`, `progress_message`); `None` for an unknown name or an empty value.
    pub async fn field(&self, id: &str, field: &str) -> Result<Option<String>> {
        let expr = match field {
            "status" => "CASE status WHEN 'scheduled' THEN 'pending' ELSE status END",
            "priority" => {
                "CASE priority WHEN 0 THEN 'critical' WHEN 1 THEN 'high' WHEN 2 THEN 'normal' \
                 ELSE 'low' END"
            }
            "fence" => "fence",
            "attempt" => "attempt",
            "max_attempts" => "max_attempts",
            "payload" => "payload",
            "enqueued_at" => "enqueued_ms",
            "run_at" => "run_at_ms",
            "started_at" => "started_ms",
            "completed_at" => "finished_ms",
            "owner" => "worker",
            "user" => "owner",
            "cancel" => "CASE cancel_requested WHEN 1 THEN '1' END",
            "error" => "error",
            "history" => "history",
            "result" => "result",
            "progress" => "progress",
            "progress_message" => "progress_message",
            _ => return Ok(None),
        };
        // `expr` is one of the fixed expressions above, never caller text.
        let sql =
            format!("SELECT CAST(({expr}) AS BLOB) AS v FROM cw_jobs WHERE queue = ?1 AND id = ?2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.name)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .and_then(|r| r.try_get::<Option<Vec<u8>>, _>("v").ok().flatten())
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}
