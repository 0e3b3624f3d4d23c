//! The dashboard's job pages: a search over every queue's jobs (by id, name, kind or user, status
//! and queue; newest first, a bounded number read per queue) and one job's detail with its
//! payload, attempts and result.
use super::{SHOWN, esc, failed, page, params};
use crate::api::ApiState;
use crate::api::jobs::{ALL_TIME, JobView, collect};
use crate::api::session::admin;
use crate::backend::{JobRecord, Queue};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::Arc;

const STATUSES: [&str; 6] = [
    "pending",
    "running",
    "completed",
    "failed",
    "cancelled",
    "retrying",
];

fn select(name: &str, options: &[String], chosen: Option<&String>) -> String {
    let mut o = format!("<select name=\"{name}\"><option value=\"\">any {name}</option>");
    for v in options {
        let sel = if Some(v) == chosen { " selected" } else { "" };
        let _ = write!(o, "<option{sel}>{}</option>", esc(v));
    }
    o.push_str("</select>");
    o
}

fn job_rows(jobs: &[JobRecord]) -> String {
    let mut rows = String::new();
    for r in jobs {
        let id = esc(&r.id);
        let _ = write!(
            rows,
            "<tr data-job=\"{id}\" data-status=\"{st}\"><td><a href=\"/dashboard/jobs/{id}\">{id}</a></td>\
             <td>{}</td><td>{}</td><td>{st}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r.queue.as_str()),
            esc(r.function_name.as_deref().unwrap_or("?")),
            esc(r.priority.as_str()),
            r.created_at.map(|t| t.rfc3339()).unwrap_or_default(),
            r.attempt,
            esc(r.owner.as_deref().unwrap_or("")),
            st = esc(r.status.as_str()),
        );
    }
    rows
}

/// At most this many jobs are read per queue (newest dead and finished after the live ones).
const SCAN: usize = 5000;

pub(super) async fn jobs(
    State(s): State<ApiState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = admin(&s, &headers).await {
        return *r;
    }
    let p = params(query.as_deref());
    let all = match s.queues().await {
        Ok(q) => q,
        Err(e) => return failed(e.detail),
    };
    let names: Vec<String> = all.iter().map(|q| q.name().to_string()).collect();
    let search = p.get("q").map(|q| q.to_lowercase());
    let chosen: Vec<Arc<dyn Queue>> = all
        .iter()
        .filter(|q| p.get("queue").is_none_or(|n| n == q.name()))
        .cloned()
        .collect();
    let scanned = match collect(&chosen, None, ALL_TIME, SCAN * chosen.len()).await {
        Ok(r) => r,
        Err(e) => return failed(e.detail),
    };
    let mut found: Vec<JobRecord> = scanned
        .into_iter()
        .filter(|r| {
            p.get("status").is_none_or(|st| r.status == st.as_str())
                && search.as_ref().is_none_or(|s| {
                    r.id.to_lowercase().contains(s)
                        || r.name.as_deref().unwrap_or("").to_lowercase().contains(s)
                        || r.function_name
                            .as_deref()
                            .unwrap_or("")
                            .to_lowercase()
                            .contains(s)
                        || r.owner.as_deref().unwrap_or("").to_lowercase().contains(s)
                })
        })
        .collect();
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let n = found.len();
    found.truncate(SHOWN);
    let statuses: Vec<String> = STATUSES.iter().map(|s| s.to_string()).collect();
    let body = format!(
        "<h1>Jobs</h1><form id=\"search\" method=\"get\" action=\"/dashboard/jobs\">\
         <input name=\"q\" placeholder=\"id, name, kind or user\" value=\"{q}\"> {} {} <button>Search</button></form>\
         <p>{n} matching (newest first, {SHOWN} shown at most; {SCAN} jobs per queue are searched: running, ready, scheduled, retrying, then the newest dead and finished)</p>\
         <table><thead><tr><th>id</th><th>queue</th><th>kind</th><th>status</th><th>priority</th><th>created</th>\
         <th>attempt</th><th>user</th></tr></thead><tbody>{}</tbody></table>",
        select("status", &statuses, p.get("status")),
        select("queue", &names, p.get("queue")),
        job_rows(&found),
        q = esc(p.get("q").map(String::as_str).unwrap_or("")),
    );
    page("Jobs", &body).into_response()
}

pub(super) async fn job(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admin(&s, &headers).await {
        return *r;
    }
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            page("Not found", &format!("<h1>No job {}</h1>", esc(&id))),
        )
            .into_response()
    };
    let q = match s.find(&id).await {
        Ok(Some(q)) => q,
        Ok(None) => return not_found(),
        Err(e) => return failed(e.detail),
    };
    let rec = match q.show(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(),
        Err(e) => return failed(e),
    };
    let history = serde_json::to_string_pretty(&rec.history).unwrap_or_default();
    let payload = rec
        .raw_payload
        .clone()
        .or_else(|| {
            rec.job
                .as_ref()
                .map(|j| serde_json::to_string_pretty(j).unwrap_or_default())
        })
        .unwrap_or_default();
    let view = JobView::from_record(rec.clone());
    let dd = |k: &str, v: &str| format!("<dt>{k}</dt><dd>{}</dd>", esc(v));
    let mut dl = String::new();
    dl += &format!(
        "<dt>status</dt><dd><span id=\"job-status\">{}</span></dd>",
        esc(&view.status)
    );
    dl += &dd("queue", &view.queue);
    dl += &dd("kind", view.function_name.as_deref().unwrap_or("?"));
    dl += &dd("name", view.name.as_deref().unwrap_or(""));
    dl += &dd("priority", &view.priority);
    dl += &dd("user", view.created_by_user_id.as_deref().unwrap_or(""));
    dl += &dd("created", view.created_at.as_deref().unwrap_or(""));
    dl += &dd("started", view.started_at.as_deref().unwrap_or(""));
    dl += &dd("completed", view.completed_at.as_deref().unwrap_or(""));
    dl += &dd(
        "attempt",
        &format!(
            "{} (failed {} of {} retries)",
            view.attempt, view.retry_count, view.max_retries
        ),
    );
    dl += &dd(
        "progress",
        &format!(
            "{}% {}",
            view.progress,
            view.progress_message.as_deref().unwrap_or("")
        ),
    );
    dl += &dd("error", view.error_message.as_deref().unwrap_or(""));
    dl += &dd("worker", rec.worker.as_deref().unwrap_or(""));
    let result = view
        .result
        .as_ref()
        .map(|r| serde_json::to_string_pretty(r).unwrap_or_default())
        .unwrap_or_default();
    let body = format!(
        "<h1>Job {}</h1><dl>{dl}</dl><h2>Payload</h2><pre id=\"payload\">{}</pre>\
         <h2>Attempts</h2><pre id=\"history\">{}</pre><h2>Result</h2><pre id=\"result\">{}</pre>",
        esc(&id),
        esc(&payload),
        esc(&history),
        esc(&result),
    );
    page(&format!("Job {id}"), &body).into_response()
}
