//! The dashboard's queue pages: every queue's depth per state, throughput (finished per minute),
//! oldest ready age and workers, with pause / resume; and the workers each queue has registered,
//! alive or expired by their last heartbeat.
use super::{age, enc, esc, failed, page};
use crate::api::ApiState;
use crate::api::session::{admin, cross_site, same_origin};
use crate::backend::Queue;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::fmt::Write;

/// Jobs finished (completed or cancelled) in the last minute.
async fn per_minute(q: &dyn Queue) -> crate::backend::Result<u64> {
    let now = chatter_jobs::Timestamp::now().millis();
    q.finished_count((now.saturating_sub(60_000), now)).await
}

pub(super) async fn queues(State(s): State<ApiState>, headers: HeaderMap) -> Response {
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

pub(super) async fn queue_action(
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

pub(super) async fn workers(State(s): State<ApiState>, headers: HeaderMap) -> Response {
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
