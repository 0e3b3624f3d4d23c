//! `/dashboard`: server-rendered pages for operators (admins), by page: `queues` (depth per
//! state, throughput, oldest age, pause / resume; workers with their heartbeats), `jobs` (by
//! status with search, a job's detail), `dead` (dead letters: replay / delete). Plain HTML and one
//! stylesheet, no scripts and nothing fetched from elsewhere, so it works without a network. This
//! module routes and renders the frame they share; login, logout and the admin gate are
//! `super::session` (a server-side session behind an HttpOnly, SameSite=Strict cookie).
mod dead;
mod jobs;
mod queues;

use super::ApiState;
use super::session::{login, login_page, logout};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;

/// At most this many jobs are shown on a page (per queue for dead letters).
const SHOWN: usize = 200;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/dashboard", get(queues::queues))
        .route("/dashboard/", get(queues::queues))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route(
            "/dashboard/queues/{queue}/{action}",
            post(queues::queue_action),
        )
        .route("/dashboard/jobs", get(jobs::jobs))
        .route("/dashboard/jobs/{id}", get(jobs::job))
        .route("/dashboard/dead", get(dead::dead))
        .route(
            "/dashboard/dead/{queue}/{id}/{action}",
            post(dead::dead_action),
        )
        .route("/dashboard/workers", get(queues::workers))
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
pub(super) fn enc(s: &str) -> String {
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

pub(super) fn params(query: Option<&str>) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

pub(super) fn age(ms: u64) -> String {
    match ms {
        0 => "–".into(),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{:.1} min", ms as f64 / 60_000.0),
        ms => format!("{:.1} h", ms as f64 / 3_600_000.0),
    }
}
