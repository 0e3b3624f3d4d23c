//! `/dashboard`: server-rendered pages for operators (admins): queues (depth per state,
//! throughput, oldest age, pause / resume), jobs by status with search, a job's detail, dead
//! letters (replay / delete) and workers with their heartbeats. Plain HTML and one stylesheet,
//! no scripts and nothing fetched from elsewhere, so it works without a network. Login, logout
//! and the admin gate are `super::session` (a server-side session behind an HttpOnly,
//! SameSite=Strict cookie).
use super::ApiState;
use super::jobs::JobView;
use super::session::{admin, cross_site, login, login_page, logout, same_origin};
use crate::backend::{JobRecord, Queue};
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/dashboard", get(queues))
        .route("/dashboard/", get(queues))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/queues/{queue}/{action}", post(queue_action))
        .route("/dashboard/jobs", get(jobs))
        .route("/dashboard/jobs/{id}", get(job))
        .route("/dashboard/dead", get(dead))
        .route("/dashboard/dead/{queue}/{id}/{action}", post(dead_action))
        .route("/dashboard/workers", get(workers))
        .layer(axum::middleware::map_response(secure_headers))
}

/// Never framed by another page; only this page's own resources.
async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

/// HTML-escape text for element content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encode a query value.
fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .map(|v| v[2..].to_string())
        .unwrap_or_default()
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}\
nav{background:#1d2733;padding:.6em 1.2em}nav a{color:#dde;margin-right:1.2em;text-decoration:none}\
nav form{display:inline;float:right}main{padding:1em 1.5em}h1{font-size:1.4em}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left}\
th{background:#f3f3f3}.state{font-weight:bold}tr[data-paused=true] .state{color:#b60}\
pre{background:#f6f6f6;padding:.6em;overflow:auto;max-height:30em}form.inline{display:inline}\
.err{color:#b00}dl{display:grid;grid-template-columns:11em 1fr;gap:.2em .8em}dt{font-weight:bold}dd{margin:0;min-height:1.2em}";

pub(super) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · chatter-worker</title>\
         <style>{STYLE}</style></head><body><nav><a href=\"/dashboard\">Queues</a>\
         <a href=\"/dashboard/jobs\">Jobs</a><a href=\"/dashboard/dead\">Dead letters</a>\
         <a href=\"/dashboard/workers\">Workers</a><a href=\"/api/v1/docs\">API</a>\
         <form method=\"post\" action=\"/dashboard/logout\"><button>Log out</button></form></nav>\
         <main>{body}</main></body></html>",
        t = esc(title)
    ))
}

pub(super) fn failed(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        page(
            "Unavailable",
            &format!(
                "<h1>Unavailable</h1><p class=\"err\">{}</p>",
                esc(&e.to_string())
            ),
        ),
    )
        .into_response()
}

fn params(query: Option<&str>) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn age(ms: u64) -> String {
    match ms {
        0 => "–".into(),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{:.1} min", ms as f64 / 60_000.0),
        ms => format!("{:.1} h", ms as f64 / 3_600_000.0),
    }
}

/// Jobs finished (completed or cancelled) in the last minute.
async fn per_minute(q: &dyn Queue) -> crate::backend::Result<u64> {
    let now = chatter_jobs::Timestamp::now().millis();
    q.finished_count((now.saturating_sub(60_000), now)).await
}

async fn queues(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&s, &headers).await {
        return *r;
    }
    let qs = match s.queues().await {
        Ok(q) => q,
        Err(p) => return failed(p.detail),
    };
    let mut rows = String::new();
    for q in &qs {
        let (st, rate) = match (q.stats().await, per_minute(q.as_ref()).await) {
            (Ok(st), Ok(r)) => (st, r),
            (Err(e), _) | (_, Err(e)) => return failed(e),
        };
        let name = esc(q.name());
        let (state, action) = if st.paused {
            ("paused", "resume")
        } else {
            ("active", "pause")
        };
        let _ = write!(
            rows,
            "<tr data-queue=\"{name}\" data-paused=\"{p}\"><td><a href=\"/dashboard/jobs?queue={qn}\">{name}</a></td>\
             <td class=\"state\">{state}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><a href=\"/dashboard/dead?queue={qn}\">{}</a></td><td>{}</td><td>{rate}</td><td>{}</td><td>{}</td>\
             <td><form class=\"inline\" method=\"post\" action=\"/dashboard/queues/{qn}/{action}\">\
             <button data-action=\"{action}\">{action}</button></form></td></tr>",
            st.ready,
            st.scheduled,
            st.retrying,
            st.running,
            st.dead,
            st.finished,
            age(st.oldest_ready_age_ms),
            st.workers,
            p = st.paused,
            qn = enc(q.name()),
        );
    }
    let body = format!(
        "<h1>Queues</h1><table><thead><tr><th>queue</th><th>state</th><th>ready</th><th>scheduled</th>\
         <th>retrying</th><th>running</th><th>dead</th><th>finished</th><th>finished / min</th>\
         <th>oldest ready</th><th>workers</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
    );
    page("Queues", &body).into_response()
}

async fn queue_action(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path((queue, action)): Path<(String, String)>,
) -> Response {
    if let Err(r) = admin(&s, &headers).await {
        return *r;
    }
    if !same_origin(&headers) {
        return cross_site();
    }
    let q = s.queue(&queue);
    let r = match action.as_str() {
        "pause" => q.pause().await,
        "resume" => q.resume().await,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                page("Not found", "<h1>No such action</h1>"),
            )
                .into_response();
        }
    };
    match r {
        Ok(()) => Redirect::to("/dashboard").into_response(),
        Err(e) => failed(e),
    }
}

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
const SHOWN: usize = 200;

async fn jobs(
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
    let scanned =
        match super::jobs::collect(&chosen, None, super::jobs::ALL_TIME, SCAN * chosen.len()).await
        {
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

async fn job(State(s): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
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

async fn dead(
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
    let mut rows = String::new();
    let mut n = 0;
    for q in all
        .iter()
        .filter(|q| p.get("queue").is_none_or(|n| n == q.name()))
    {
        let list = match q.dead_list(0, SHOWN).await {
            Ok(l) => l,
            Err(e) => return failed(e),
        };
        for r in list {
            n += 1;
            let (id, qn) = (esc(&r.id), enc(q.name()));
            let back = enc(p.get("queue").map(String::as_str).unwrap_or(""));
            let _ = write!(
                rows,
                "<tr data-job=\"{id}\"><td><a href=\"/dashboard/jobs/{id}\">{id}</a></td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>\
                 <form class=\"inline\" method=\"post\" action=\"/dashboard/dead/{qn}/{id}/replay?back={back}\"><button data-action=\"replay\">replay</button></form> \
                 <form class=\"inline\" method=\"post\" action=\"/dashboard/dead/{qn}/{id}/delete?back={back}\"><button data-action=\"delete\">delete</button></form></td></tr>",
                esc(q.name()),
                esc(r.function_name.as_deref().unwrap_or("?")),
                esc(r.error_message.as_deref().unwrap_or("")),
                r.completed_at.map(|t| t.rfc3339()).unwrap_or_default(),
            );
        }
    }
    let body = format!(
        "<h1>Dead letters</h1><p>{n} shown (oldest first, {SHOWN} per queue at most)</p><table><thead><tr>\
         <th>id</th><th>queue</th><th>kind</th><th>error</th><th>died</th><th></th></tr></thead>\
         <tbody>{rows}</tbody></table>"
    );
    page("Dead letters", &body).into_response()
}

async fn dead_action(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path((queue, id, action)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = admin(&s, &headers).await {
        return *r;
    }
    if !same_origin(&headers) {
        return cross_site();
    }
    let q = s.queue(&queue);
    let r = match action.as_str() {
        "replay" => q.replay(Some(&id), 1).await,
        "delete" => q.purge_dead(Some(&id), 1).await,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                page("Not found", "<h1>No such action</h1>"),
            )
                .into_response();
        }
    };
    if let Err(e) = r {
        return failed(e);
    }
    let back = params(query.as_deref())
        .get("back")
        .map(|q| format!("/dashboard/dead?queue={}", enc(q)))
        .unwrap_or_else(|| "/dashboard/dead".into());
    Redirect::to(&back).into_response()
}

async fn workers(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&s, &headers).await {
        return *r;
    }
    let all = match s.queues().await {
        Ok(q) => q,
        Err(e) => return failed(e.detail),
    };
    let now = chatter_jobs::Timestamp::now().millis();
    let mut rows = String::new();
    for q in &all {
        let live = match q.workers().await {
            Ok(v) => v,
            Err(e) => return failed(e),
        };
        for (w, until) in live {
            let state = if until >= now { "alive" } else { "expired" };
            let _ = write!(
                rows,
                "<tr data-worker=\"{w}\"><td>{w}</td><td>{}</td><td>{state}</td><td>{}</td></tr>",
                esc(q.name()),
                if until >= now {
                    format!("for {}", age(until - now))
                } else {
                    format!("{} ago", age(now - until))
                },
                w = esc(&w),
            );
        }
    }
    let body = format!(
        "<h1>Workers</h1><p>Each worker's heartbeat keeps it registered for a while; \
         the last column says how long it stays registered without another.</p><table><thead><tr>\
         <th>worker</th><th>queue</th><th>state</th><th>registered</th></tr></thead><tbody>{rows}</tbody></table>"
    );
    page("Workers", &body).into_response()
}
