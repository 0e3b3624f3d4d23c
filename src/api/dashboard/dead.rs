//! The dashboard's dead letters: each queue's oldest, with replay (back on the queue with a fresh
//! attempt count) and delete, both form posts from the page itself.
use super::{SHOWN, enc, esc, failed, page, params};
use crate::api::ApiState;
use crate::api::session::{admin, cross_site, same_origin};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::fmt::Write;

pub(super) async fn dead(
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

pub(super) async fn dead_action(
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
