//! `GET /api/v1/jobs`: Chatter's listing with its filters, sort and paging. A user's unfiltered
//! listing reads only their index; anything else collects a bounded number of records
//! ([`collect`], shared by the queues and also the dashboard's search), filters and sorts them.
use super::submit::rfc3339;
use super::{JobList, JobPriority, JobStatus, JobView};
use crate::api::ApiState;
use crate::api::problem::{ApiResult, Problem, query_pairs};
use crate::backend::{JobRecord, Queue};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use chatter_jobs::{Priority, Timestamp};
use serde_json::Value;
use std::sync::Arc;
use utoipa::IntoParams;

/// `GET /api/v1/jobs` query (Chatter's filters).
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQuery {
    status: Option<JobStatus>,
    priority: Option<JobPriority>,
    function_name: Option<String>,
    /// RFC 3339.
    created_after: Option<String>,
    /// RFC 3339.
    created_before: Option<String>,
    /// Jobs carrying every one of these tags (repeat the parameter or separate with commas).
    tags: Option<Vec<String>>,
    /// Case-insensitive substring of the id, name or kind.
    search: Option<String>,
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    #[param(minimum = 0, maximum = 100000)]
    offset: Option<usize>,
    /// created_at (default), started_at, completed_at, priority, status, name, function_name.
    sort_by: Option<String>,
    /// asc or desc (default).
    sort_order: Option<String>,
}

struct Filters {
    status: Option<String>,
    priority: Option<String>,
    function_name: Option<String>,
    created: (u64, u64),
    tags: Vec<String>,
    search: Option<String>,
    limit: usize,
    offset: usize,
    sort_by: String,
    desc: bool,
}

impl Filters {
    fn parse(query: Option<&str>) -> ApiResult<Self> {
        let mut f = Filters {
            status: None,
            priority: None,
            function_name: None,
            created: ALL_TIME,
            tags: Vec::new(),
            search: None,
            limit: 20,
            offset: 0,
            sort_by: "created_at".into(),
            desc: true,
        };
        let num = |k: &str, v: &str, lo: usize, hi: usize| -> ApiResult<usize> {
            v.parse::<usize>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| Problem::field(k, format!("{v:?} is not an integer in {lo}..={hi}")))
        };
        for (k, v) in query_pairs(query)? {
            match k.as_str() {
                "status" => {
                    serde_json::from_value::<JobStatus>(Value::String(v.clone())).map_err(|_| {
                        Problem::field("status", format!("unknown status {v:?}: expected one of pending, running, completed, failed, cancelled, retrying"))
                    })?;
                    f.status = Some(v);
                }
                "priority" => {
                    v.parse::<Priority>()
                        .map_err(|e| Problem::field("priority", e))?;
                    f.priority = Some(v);
                }
                "function_name" => f.function_name = Some(v),
                "created_after" => f.created.0 = rfc3339("created_after", &v)?.millis(),
                "created_before" => f.created.1 = rfc3339("created_before", &v)?.millis(),
                "tags" => f.tags.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_string),
                ),
                "search" => f.search = Some(v.to_lowercase()).filter(|s| !s.is_empty()),
                "limit" => f.limit = num("limit", &v, 1, 100)?,
                "offset" => f.offset = num("offset", &v, 0, 100_000)?,
                "sort_by" => {
                    const SORTS: [&str; 7] = [
                        "created_at",
                        "started_at",
                        "completed_at",
                        "priority",
                        "status",
                        "name",
                        "function_name",
                    ];
                    if !SORTS.contains(&v.as_str()) {
                        return Err(Problem::field(
                            "sort_by",
                            format!("{v:?}: expected one of {}", SORTS.join(", ")),
                        ));
                    }
                    f.sort_by = v;
                }
                "sort_order" => {
                    f.desc = match v.as_str() {
                        "desc" => true,
                        "asc" => false,
                        _ => {
                            return Err(Problem::field(
                                "sort_order",
                                format!("{v:?}: expected asc or desc"),
                            ));
                        }
                    }
                }
                other => {
                    return Err(Problem::field(other, "unknown query parameter"));
                }
            }
        }
        Ok(f)
    }

    /// Only the index is needed: no filter on a job's fields, newest or oldest first.
    fn index_only(&self) -> bool {
        self.status.is_none()
            && self.priority.is_none()
            && self.function_name.is_none()
            && self.tags.is_empty()
            && self.search.is_none()
            && self.sort_by == "created_at"
    }

    fn matches(&self, r: &JobRecord) -> bool {
        let tags: &[String] = r.job.as_ref().map(|j| j.tags.as_slice()).unwrap_or(&[]);
        self.status.as_ref().is_none_or(|s| r.status == s.as_str())
            && self
                .priority
                .as_ref()
                .is_none_or(|p| r.priority == p.as_str())
            && self
                .function_name
                .as_ref()
                .is_none_or(|f| Some(f) == r.function_name.as_ref())
            && self.tags.iter().all(|t| tags.contains(t))
            && self.search.as_ref().is_none_or(|q| {
                r.id.to_lowercase().contains(q)
                    || r.name.as_deref().unwrap_or("").to_lowercase().contains(q)
                    || r.function_name
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains(q)
            })
    }
}

/// Every creation time (the `created` bounds of an unfiltered listing).
pub const ALL_TIME: (u64, u64) = (0, u64::MAX >> 11);

/// Index entries a filtered listing reads at most, across queues (newest first).
pub const MAX_SCAN: usize = 50_000;
const SCAN_CHUNK: usize = 500;

fn sort_key(r: &JobRecord, by: &str) -> (String, u64) {
    let t = |v: Option<Timestamp>| v.map_or(0, Timestamp::millis);
    match by {
        "started_at" => (String::new(), t(r.started_at)),
        "completed_at" => (String::new(), t(r.completed_at)),
        "priority" => {
            let rank = Priority::ALL
                .iter()
                .position(|x| *x == r.priority)
                .unwrap_or(2);
            (String::new(), 3 - rank as u64)
        }
        "status" => (r.status.to_string(), 0),
        "name" => (r.name.clone().unwrap_or_default(), 0),
        "function_name" => (r.function_name.clone().unwrap_or_default(), 0),
        _ => (String::new(), t(r.created_at)),
    }
}

/// The records a filtered listing looks at, at most `budget` (shared evenly by the queues; the
/// API gives [`MAX_SCAN`]): one owner's jobs created within
/// `created` (newest first, from the owner's index), or for admins every job of every state
/// (from the queues' state structures: running, ready, scheduled, retrying, newest dead and
/// finished), created within `created`.
pub async fn collect(
    queues: &[Arc<dyn Queue>],
    owner: Option<&str>,
    created: (u64, u64),
    budget: usize,
) -> ApiResult<Vec<JobRecord>> {
    let mut out = Vec::new();
    // Each queue gets its share of the budget (a big queue must not hide the others).
    let share = budget / queues.len().max(1);
    for q in queues {
        let budget = share;
        let ids: Vec<String> = match owner {
            Some(o) => {
                let mut ids = Vec::new();
                let mut offset = 0;
                while ids.len() < budget {
                    let n = SCAN_CHUNK.min(budget - ids.len());
                    let page = q.index_page(o, created, offset, n, true).await?;
                    offset += page.len();
                    let short = page.len() < n;
                    ids.extend(page.into_iter().map(|(id, _)| id));
                    if short {
                        break;
                    }
                }
                ids
            }
            None => q.scan_ids(budget).await?,
        };
        for chunk in ids.chunks(SCAN_CHUNK) {
            let recs = q.show_many(chunk).await?;
            if let Some(o) = owner {
                let gone: Vec<String> = chunk
                    .iter()
                    .zip(&recs)
                    .filter(|(_, r)| r.is_none())
                    .map(|(id, _)| id.clone())
                    .collect();
                q.unindex(o, &gone).await?;
            }
            out.extend(recs.into_iter().flatten().filter(|r| {
                let at = r.created_at.map_or(0, Timestamp::millis);
                (created.0..=created.1).contains(&at)
            }));
        }
    }
    Ok(out)
}

/// List jobs (the caller's; every job for an admin) with Chatter's filters and paging.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(ListQuery),
    responses(
        (status = 200, body = JobList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<ApiState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<JobList>> {
    let caller = s.caller(&headers)?;
    let f = Filters::parse(query.as_deref())?;
    let queues = s.queues().await?;
    let (jobs, total) = match caller.scope() {
        Some(owner) if f.index_only() => {
            // Total from the owner's indexes; the page from each queue's first offset+limit.
            let mut total = 0;
            let mut entries: Vec<(u64, String, usize)> = Vec::new();
            for (qi, q) in queues.iter().enumerate() {
                total += q.index_count(owner, f.created).await?;
                let page = q
                    .index_page(owner, f.created, 0, f.offset + f.limit, f.desc)
                    .await?;
                entries.extend(page.into_iter().map(|(id, at)| (at, id, qi)));
            }
            entries.sort();
            if f.desc {
                entries.reverse();
            }
            let page: Vec<_> = entries.into_iter().skip(f.offset).take(f.limit).collect();
            // One round trip per queue, then back in the page's order.
            let mut found: std::collections::HashMap<String, JobRecord> =
                std::collections::HashMap::new();
            for (qi, q) in queues.iter().enumerate() {
                let ids: Vec<String> = page
                    .iter()
                    .filter(|e| e.2 == qi)
                    .map(|e| e.1.clone())
                    .collect();
                let recs = q.show_many(&ids).await?;
                let mut gone = Vec::new();
                for (id, r) in ids.into_iter().zip(recs) {
                    match r {
                        Some(r) => {
                            found.insert(id, r);
                        }
                        None => gone.push(id),
                    }
                }
                q.unindex(owner, &gone).await?;
            }
            let jobs: Vec<JobRecord> = page
                .into_iter()
                .filter_map(|(_, id, _)| found.remove(&id))
                .collect();
            (jobs, total)
        }
        scope => {
            let mut matched: Vec<JobRecord> = collect(&queues, scope, f.created, MAX_SCAN)
                .await?
                .into_iter()
                .filter(|r| f.matches(r))
                .collect();
            matched.sort_by(|a, b| {
                let o = sort_key(a, &f.sort_by)
                    .cmp(&sort_key(b, &f.sort_by))
                    .then_with(|| a.id.cmp(&b.id));
                if f.desc { o.reverse() } else { o }
            });
            let total = matched.len() as u64;
            let jobs = matched.into_iter().skip(f.offset).take(f.limit).collect();
            (jobs, total)
        }
    };
    let has_more = (f.offset + jobs.len()) < total as usize;
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(JobView::from_record).collect(),
        total,
        limit: f.limit,
        offset: f.offset,
        has_more,
    }))
}
