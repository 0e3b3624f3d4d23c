//! The producers' HTTP API against real worker processes and Redis: every route's happy path,
//! validation problems naming the field, auth (missing / bad / expired → 401, another user's job
//! → 404), owner scoping of lists and of SSE events across two processes, `Last-Event-ID` replay.
#[path = "common/api.rs"]
mod api_kit;
mod common;

use api_kit::{SECRET, jwt, key, spawn_api, spawn_api_on_own_port, tmpdir};

use common::wait_until;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);
struct Client {
    c: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(base: &str, token: Option<String>) -> Self {
        Self {
            c: reqwest::Client::new(),
            base: base.to_string(),
            token,
        }
    }
    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.c.request(m, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        read(r).await
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .req(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(r).await
    }
}

/// Status and JSON body; a problem document must say so in its content type.
async fn read(r: reqwest::Response) -> (StatusCode, Value) {
    let st = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if st.is_client_error() || st.is_server_error() {
        assert_eq!(ct, "application/problem+json", "{st}: {v}");
        assert_eq!(v["status"], st.as_u16(), "{v}");
        assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
    }
    (st, v)
}

/// A 422 naming `field`.
fn names(v: &Value, field: &str) -> bool {
    v["errors"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["field"] == field))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_with_validation_auth_and_owner_scoping() {
    let prefix = format!("api-{}", ulid::Ulid::new());
    let api = spawn_api(&prefix, &tmpdir("routes")).await;
    let b = api.base.as_str();
    let u1 = Client::new(b, Some(key("u1")));
    let u2 = Client::new(b, Some(key("u2")));
    let admin = Client::new(b, Some(key("admin")));

    // Auth: missing, bad key, expired, bad signature → 401; a good JWT is its `sub`.
    for token in [
        None,
        Some("cwk_nope".to_string()),
        Some(jwt("u1", -3600, SECRET)),
        Some(jwt("u1", 3600, "other-secret")),
    ] {
        let (st, v) = Client::new(b, token.clone()).get("/api/v1/jobs").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{token:?}: {v}");
    }
    let (st, v) = Client::new(b, Some(jwt("u1", 3600, SECRET)))
        .get("/api/v1/jobs")
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // Create: the job with Chatter's fields, owned by the caller.
    // Within the scheduling horizon ([limits] schedule_horizon_days, 365 by default).
    let day = (chrono::Utc::now() + chrono::Duration::days(200)).date_naive();
    let future = format!("{day}T02:00:00+02:00");
    let future = future.as_str();
    let (st, j1) = u1
        .post(
            "/api/v1/jobs",
            json!({"name": "nightly", "function_name": "ping", "priority": "high",
                   "max_retries": 2, "tags": ["t1", "t2"], "metadata": {"k": 1}, "schedule_at": future}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{j1}");
    assert_eq!(j1["status"], "pending");
    assert_eq!(j1["created_by_user_id"], "u1");
    assert_eq!(j1["priority"], "high");
    assert_eq!(j1["max_retries"], 2);
    assert_eq!(j1["tags"], json!(["t1", "t2"]));
    // An offset is understood (Python's isoformat()); times are shown in UTC.
    assert_eq!(j1["scheduled_at"], format!("{day}T00:00:00.000Z"));
    let id1 = j1["id"].as_str().unwrap().to_string();
    assert_eq!(id1.len(), 26);

    // Validation: each problem names its field.
    for (body, field) in [
        (json!({"function_name": "nope"}), "function_name"),
        (
            json!({"function_name": "ping", "priority": "urgent"}),
            "priority",
        ),
        (
            json!({"function_name": "ping", "max_retries": 11}),
            "max_retries",
        ),
        (json!({"function_name": "ping", "timeout": 0}), "timeout"),
        (
            json!({"function_name": "ping", "schedule_at": "soon"}),
            "schedule_at",
        ),
        (json!({"function_name": "ping", "colour": "red"}), "colour"),
        (json!({"priority": "low"}), "function_name"),
        (
            json!({"function_name": "chunk_document", "kwargs": {"document_id": "x"}}),
            "kwargs",
        ),
        (json!({"function_name": "sleep", "kwargs": {}}), "kwargs"),
        (json!({"function_name": "ping", "tags": [""]}), "tags"),
        (
            json!({"function_name": "run_workflow", "kwargs": {"owner": "u2", "definition_id": "d"}}),
            "kwargs.owner",
        ),
    ] {
        let (st, v) = u1.post("/api/v1/jobs", body.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(names(&v, field), "{body}: expected field {field}: {v}");
    }
    let (st, v) = u1
        .post("/api/v1/jobs", json!({"function_name": "nope"}))
        .await;
    assert!(
        v["detail"].as_str().unwrap().contains("valid kinds: "),
        "{st} {v}"
    );
    let r = u1
        .req(reqwest::Method::POST, "/api/v1/jobs")
        .body("function_name=ping")
        .send()
        .await
        .unwrap();
    assert_eq!(read(r).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Idempotency-Key: the second call returns the first job.
    let idem = |k: &str| {
        u2.req(reqwest::Method::POST, "/api/v1/jobs")
            .header("Idempotency-Key", k)
            .json(&json!({"function_name": "ping", "schedule_at": future, "tags": ["idem"]}))
    };
    let (st, first) = read(idem("k-1").send().await.unwrap()).await;
    assert_eq!(st, StatusCode::CREATED);
    let r = idem("k-1").send().await.unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let (st, again) = read(r).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);

    // Show: own 200, another user's 404, admin 200, not a ULID 422.
    assert_eq!(
        u1.get(&format!("/api/v1/jobs/{id1}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        u2.get(&format!("/api/v1/jobs/{id1}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin.get(&format!("/api/v1/jobs/{id1}")).await.0,
        StatusCode::OK
    );
    let (st, v) = u1.get("/api/v1/jobs/not-a-ulid").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(names(&v, "id"), "{v}");
    let (st, _) = u1.get(&format!("/api/v1/jobs/{}", ulid::Ulid::new())).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A few more of u1's jobs, run by the worker: completed, and one dead.
    let mut done_ids = Vec::new();
    for i in 0..3 {
        let (st, v) = u1
            .post(
                "/api/v1/jobs",
                json!({"function_name": "ping", "name": format!("quick-{i}")}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED);
        done_ids.push(v["id"].as_str().unwrap().to_string());
    }
    let (_, dead) = u1
        .post(
            "/api/v1/jobs",
            json!({"function_name": "sleep", "kwargs": {"ms": 1, "fatal": true}, "max_retries": 0}),
        )
        .await;
    let dead_id = dead["id"].as_str().unwrap().to_string();
    wait_until(LIMIT, "the worker to finish u1's jobs", || {
        let (u1, ids, dead_id) = (&u1, &done_ids, &dead_id);
        async move {
            for id in ids {
                if u1.get(&format!("/api/v1/jobs/{id}")).await.1["status"] != "completed" {
                    return false;
                }
            }
            u1.get(&format!("/api/v1/jobs/{dead_id}")).await.1["status"] == "failed"
        }
    })
    .await;

    // List: owner-scoped, filters, paging, sorting; problems for bad parameters.
    let (st, l) = u1.get("/api/v1/jobs").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(l["total"], 5, "{l}");
    assert!(
        l["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["created_by_user_id"] == "u1")
    );
    assert_eq!(u2.get("/api/v1/jobs").await.1["total"], 1);
    assert_eq!(admin.get("/api/v1/jobs").await.1["total"], 6);
    let (_, l) = u1.get("/api/v1/jobs?limit=2&offset=0").await;
    assert_eq!(
        (l["jobs"].as_array().unwrap().len(), l["has_more"].clone()),
        (2, json!(true))
    );
    // Newest first by default.
    let at = |i: usize| l["jobs"][i]["created_at"].as_str().unwrap().to_string();
    assert!(at(0) >= at(1), "{l}");
    let (_, l) = u1.get("/api/v1/jobs?limit=2&offset=4").await;
    assert_eq!(
        (l["jobs"].as_array().unwrap().len(), l["has_more"].clone()),
        (1, json!(false))
    );
    let (_, l) = u1.get("/api/v1/jobs?sort_order=asc&limit=1").await;
    assert_eq!(l["jobs"][0]["id"], id1.as_str());
    let (_, l) = u1.get("/api/v1/jobs?status=completed").await;
    assert_eq!(l["total"], 3, "{l}");
    let (_, l) = u1.get("/api/v1/jobs?status=failed").await;
    assert_eq!(
        (l["total"].clone(), l["jobs"][0]["id"].clone()),
        (json!(1), json!(dead_id))
    );
    assert_eq!(
        u1.get("/api/v1/jobs?function_name=sleep").await.1["total"],
        1
    );
    assert_eq!(u1.get("/api/v1/jobs?tags=t1&tags=t2").await.1["total"], 1);
    assert_eq!(u1.get("/api/v1/jobs?tags=t1,zzz").await.1["total"], 0);
    assert_eq!(u1.get("/api/v1/jobs?search=QUICK").await.1["total"], 3);
    assert_eq!(u1.get("/api/v1/jobs?priority=high").await.1["total"], 1);
    let (_, l) = u1
        .get("/api/v1/jobs?sort_by=priority&sort_order=desc&limit=1")
        .await;
    assert_eq!(l["jobs"][0]["id"], id1.as_str());
    let (_, l) = admin
        .get("/api/v1/jobs?created_after=2000-01-01T00:00:00Z&created_before=2001-01-01T00:00:00Z")
        .await;
    assert_eq!(l["total"], 0);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
        ("status=done", "status"),
        ("priority=urgent", "priority"),
        ("sort_by=colour", "sort_by"),
        ("sort_order=up", "sort_order"),
        ("created_after=yesterday", "created_after"),
        ("bogus=1", "bogus"),
    ] {
        let (st, v) = u1.get(&format!("/api/v1/jobs?{q}")).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {v}");
        assert!(names(&v, field), "{q}: {v}");
    }

    // Cancel: another user's 404; own pending job cancelled; again → 409.
    let path = format!("/api/v1/jobs/{id1}/cancel");
    assert_eq!(u2.post(&path, json!({})).await.0, StatusCode::NOT_FOUND);
    let (st, v) = u1.post(&path, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"success": true, "message": "cancelled", "job_id": id1})
    );
    assert_eq!(u1.post(&path, json!({})).await.0, StatusCode::CONFLICT);

    // Retry: only from dead; the dead job goes back to pending (and dies again).
    let (st, _) = u1
        .post(&format!("/api/v1/jobs/{}/retry", done_ids[0]), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        u2.post(&format!("/api/v1/jobs/{dead_id}/retry"), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (st, v) = u1
        .post(&format!("/api/v1/jobs/{dead_id}/retry"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        ["pending", "running", "failed"].contains(&v["status"].as_str().unwrap()),
        "{v}"
    );
    assert!(v["attempt"].as_u64().unwrap() <= 1, "{v}");

    // Stats: a user's own counts; per-queue stats and cleanup are for admins.
    wait_until(LIMIT, "the retried job to die again", || async {
        u1.get(&format!("/api/v1/jobs/{dead_id}")).await.1["status"] == "failed"
    })
    .await;
    let (st, o) = u1.get("/api/v1/jobs/stats/overview").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (
            &o["total_jobs"],
            &o["completed_jobs"],
            &o["failed_jobs"],
            &o["pending_jobs"]
        ),
        // completed: 3 completed + the cancelled one (like the queues' `finished`)
        (&json!(5), &json!(4), &json!(1), &json!(0)),
        "{o}"
    );
    assert!(o["active_workers"].as_u64().unwrap() >= 1, "{o}");
    let (_, o) = admin.get("/api/v1/jobs/stats/overview").await;
    assert_eq!(o["pending_jobs"], 1, "{o}");
    assert_eq!(
        u1.get("/api/v1/jobs/stats/queues").await.0,
        StatusCode::FORBIDDEN
    );
    let (st, qs) = admin.get("/api/v1/jobs/stats/queues").await;
    assert_eq!(st, StatusCode::OK);
    let m = qs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "maintenance")
        .unwrap();
    assert_eq!((&m["dead"], &m["scheduled"]), (&json!(1), &json!(1)), "{m}");
    assert_eq!(
        u1.post("/api/v1/jobs/cleanup", json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    let (st, c) = admin.post("/api/v1/jobs/cleanup", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(
        (&c["removed_finished"], &c["removed_dead"]),
        (&json!(4), &json!(0)),
        "{c}"
    );
    let (_, c) = admin
        .post("/api/v1/jobs/cleanup", json!({"force": true}))
        .await;
    assert_eq!(c["removed_dead"], 1, "{c}");
    assert_eq!(u1.get("/api/v1/jobs").await.1["total"], 0);
    assert_eq!(u2.get("/api/v1/jobs").await.1["total"], 1);

    // Batch: all or nothing, errors naming the job and field, bounded size.
    let before = admin.get("/api/v1/jobs").await.1["total"].as_u64().unwrap();
    let (st, v) = u2
        .post(
            "/api/v1/jobs/batch",
            json!({"jobs": [{"function_name": "ping", "schedule_at": future},
                            {"function_name": "nope"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(names(&v, "jobs[1].function_name"), "{v}");
    assert_eq!(admin.get("/api/v1/jobs").await.1["total"], before);
    let six: Vec<Value> = (0..6).map(|_| json!({"function_name": "ping"})).collect();
    let (st, v) = u2.post("/api/v1/jobs/batch", json!({ "jobs": six })).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(names(&v, "jobs"), "{v}");
    let three: Vec<Value> = (0..3)
        .map(|i| json!({"function_name": "ping", "schedule_at": future, "name": format!("b{i}")}))
        .collect();
    let send = || {
        u2.req(reqwest::Method::POST, "/api/v1/jobs/batch")
            .header("Idempotency-Key", "batch-1")
            .json(&json!({ "jobs": three }))
    };
    let (st, v) = read(send().send().await.unwrap()).await;
    assert_eq!((st, &v["created"]), (StatusCode::CREATED, &json!(3)), "{v}");
    let (_, again) = read(send().send().await.unwrap()).await;
    let batch_ids = |v: &Value| -> Vec<Value> {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].clone())
            .collect()
    };
    assert_eq!(again["created"], 0);
    assert_eq!(batch_ids(&again), batch_ids(&v));
    assert_eq!(u2.get("/api/v1/jobs").await.1["total"], 4);

    // The conveniences: a document's processing, a workflow run (as the caller).
    // A user's document must be theirs: this process has no database to ask, so it is not
    // found; an admin may process any.
    let doc = ulid::Ulid::new().to_string();
    let path = format!("/api/v1/documents/{doc}/process");
    assert_eq!(u1.post(&path, json!({})).await.0, StatusCode::NOT_FOUND);
    let (st, v) = admin.post(&path, json!({"priority": "critical"})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (&v["function_name"], &v["kwargs"]["document_id"]),
        (&json!("chunk_document"), &json!(doc))
    );
    let (st, v) = u1.post("/api/v1/documents/nope/process", json!({})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(names(&v, "id"), "{v}");
    let def = json!({"name": "w", "nodes": [{"id": "s", "type": "start"}, {"id": "e", "type": "end"}],
                     "edges": [{"id": "1", "source": "s", "target": "e"}]});
    let (st, v) = u2
        .post(
            "/api/v1/workflows/run",
            json!({"definition": def, "inputs": {"message": "hi"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (&v["function_name"], &v["kwargs"]["owner"]),
        (&json!("run_workflow"), &json!("u2"))
    );
    let (st, v) = u2
        .post(
            "/api/v1/workflows/run",
            json!({"definition": {"name": "bad"}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(names(&v, "kwargs"), "{v}");

    // Keys are per user: the same key from u1 is u1's own job, and u2's is not shown to u1.
    let (st, other) = read(
        u1.req(reqwest::Method::POST, "/api/v1/jobs")
            .header("Idempotency-Key", "k-1")
            .json(&json!({"function_name": "ping", "schedule_at": future}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{other}");
    assert_ne!(other["id"], first["id"]);
    assert_eq!(other["created_by_user_id"], "u1");
    let other_id = other["id"].as_str().unwrap().to_string();
    assert_eq!(
        u1.post(&format!("/api/v1/jobs/{other_id}/cancel"), json!({}))
            .await
            .0,
        StatusCode::OK
    );

    // Access: maintenance kinds are for admins; a user's document must be theirs (this process
    // has no database to ask, so it is not found); admins may process any.
    let (st, v) = u1
        .post(
            "/api/v1/jobs",
            json!({"function_name": "database_maintenance"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("function_name"),
        "{v}"
    );
    let (st, v) = u1
        .post(
            "/api/v1/jobs/batch",
            json!({"jobs": [{"function_name": "ping"}, {"function_name": "document_archiving"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("jobs[1].function_name"),
        "{v}"
    );
    let (st, _) = admin
        .post(
            "/api/v1/jobs",
            json!({"function_name": "database_maintenance", "schedule_at": future}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // Chatter's spellings: a trailing slash, `force` in the query, lowercase ids, offsets.
    assert_eq!(u2.get("/api/v1/jobs/").await.0, StatusCode::OK);
    assert_eq!(
        u1.get(&format!("/api/v1/jobs/{}", other_id.to_lowercase()))
            .await
            .1["id"],
        other_id.as_str()
    );
    let (st, c) = admin
        .post("/api/v1/jobs/cleanup?force=true", json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert!(c["removed_finished"].as_u64().unwrap() >= 1, "{c}");
    // axum's own rejections are problem documents too.
    let r = u1
        .req(reqwest::Method::DELETE, &format!("/api/v1/jobs/{other_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(read(r).await.0, StatusCode::METHOD_NOT_ALLOWED);

    // OpenAPI and its docs page; unknown API routes are problems too.
    let doc: Value = reqwest::get(format!("{b}/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for p in [
        "/api/v1/jobs",
        "/api/v1/jobs/{id}/cancel",
        "/api/v1/jobs/batch",
        "/api/v1/events/stream",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
    let page = reqwest::get(format!("{b}/api/v1/docs"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/api/v1/openapi.json"));
    assert_eq!(u1.get("/api/v1/nothing").await.0, StatusCode::NOT_FOUND);
}

/// One SSE connection: frames as (id, event, data).
struct Sse {
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, String, Value)>,
    _task: tokio::task::JoinHandle<()>,
}

impl Sse {
    async fn open(base: &str, token: &str, last: Option<&str>) -> Self {
        let mut r = reqwest::Client::new()
            .get(format!("{base}/api/v1/events/stream"))
            .bearer_auth(token);
        if let Some(l) = last {
            r = r.header("Last-Event-ID", l);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            use futures::StreamExt;
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    let (mut id, mut ev, mut data) = (String::new(), String::new(), String::new());
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("id: ") {
                            id = v.into();
                        } else if let Some(v) = line.strip_prefix("event: ") {
                            ev = v.into();
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data = v.into();
                        }
                    }
                    if !id.is_empty() {
                        let _ = tx.send((id, ev, serde_json::from_str(&data).unwrap()));
                    }
                }
            }
        });
        Self { rx, _task: task }
    }

    async fn next(&mut self) -> (String, String, Value) {
        tokio::time::timeout(LIMIT, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no event within {LIMIT:?}"))
            .expect("stream ended")
    }

    /// Frames up to and including the one with id `id`.
    async fn until_id(&mut self, id: &str) -> Vec<(String, String, Value)> {
        let mut got = Vec::new();
        loop {
            let f = self.next().await;
            let last = f.0 == id;
            got.push(f);
            if last {
                return got;
            }
        }
    }

    /// Frames until `n` `job.completed` events were seen.
    async fn until_completed(&mut self, n: usize) -> Vec<(String, String, Value)> {
        let mut got = Vec::new();
        let mut done = 0;
        while done < n {
            let f = tokio::time::timeout(LIMIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("only {done} of {n} completions within {LIMIT:?}: {got:?}")
                })
                .unwrap();
            if f.1 == "job.completed" {
                done += 1;
            }
            got.push(f);
        }
        got
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_reach_only_their_owner_across_processes_and_resume_after_last_event_id() {
    let prefix = format!("sse-{}", ulid::Ulid::new());
    let dir = tmpdir("sse");
    let a = spawn_api(&prefix, &dir).await;
    let b = spawn_api(&prefix, &dir).await;
    let u1_on_a = Sse::open(&a.base, &key("u1"), None).await;
    let mut u1_on_a = u1_on_a;
    let mut u2_on_b = Sse::open(&b.base, &jwt("u2", 3600, SECRET), None).await;
    let mut admin_on_b = Sse::open(&b.base, &key("admin"), None).await;

    // u1 enqueues through B, u2 through A: either process's worker may run each job.
    let post = |base: &str, user: &str, ms: u64| {
        let (base, k) = (base.to_string(), key(user));
        async move {
            let (st, v) = Client::new(&base, Some(k))
                .post(
                    "/api/v1/jobs",
                    json!({"function_name": "sleep", "kwargs": {"ms": ms}}),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_string()
        }
    };
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(post(&b.base, "u1", 50).await);
        post(&a.base, "u2", 50).await;
    }
    let u1_events = u1_on_a.until_completed(5).await;
    let u2_events = u2_on_b.until_completed(5).await;
    let all = admin_on_b.until_completed(10).await;
    for (user, evs) in [("u1", &u1_events), ("u2", &u2_events)] {
        for (_, ev, d) in evs.iter() {
            assert_eq!(d["owner_id"], user, "{user} got {ev} {d}");
            assert!(ev.starts_with("job."), "{ev}");
        }
        for kind in ["job.started", "job.progress", "job.completed"] {
            assert!(evs.iter().any(|(_, e, _)| e == kind), "{user}: no {kind}");
        }
    }
    let ids: std::collections::BTreeSet<_> = u1_events
        .iter()
        .map(|(_, _, d)| d["job_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, mine.iter().cloned().collect());
    let owners: std::collections::BTreeSet<String> = all
        .iter()
        .map(|(_, _, d)| d["owner_id"].to_string())
        .collect();
    assert_eq!(owners.len(), 2, "the admin sees both users' events");

    // Reconnect: u1 drops after its 3rd event; more jobs run meanwhile; resuming on the other
    // process with Last-Event-ID delivers exactly what followed, none missed, none repeated.
    let resume_at = u1_events[2].0.clone();
    drop(u1_on_a);
    let ids = |fs: &[(String, String, Value)]| fs.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    let mut stayed = Sse::open(&b.base, &key("u1"), Some(&resume_at)).await;
    let replayed = stayed.until_id(&u1_events.last().unwrap().0).await;
    assert_eq!(ids(&replayed), ids(&u1_events[3..]));
    for _ in 0..3 {
        post(&a.base, "u1", 10).await;
    }
    let later = stayed.until_completed(3).await;
    let mut resumed = Sse::open(&a.base, &key("u1"), Some(&resume_at)).await;
    let got = resumed.until_id(&later.last().unwrap().0).await;
    let expected: Vec<_> = ids(&u1_events[3..])
        .into_iter()
        .chain(ids(&later))
        .collect();
    assert_eq!(
        ids(&got),
        expected,
        "the resumed stream missed or repeated events"
    );
    // A bad Last-Event-ID is a problem naming the header.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/events/stream", a.base))
        .bearer_auth(key("u1"))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    let (st, v) = read(r).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(names(&v, "Last-Event-ID"), "{v}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_can_have_its_own_address() {
    let prefix = format!("own-{}", ulid::Ulid::new());
    let (api, metrics) = spawn_api_on_own_port(&prefix, &tmpdir("own")).await;
    let c = Client::new(&api.base, Some(key("u1")));
    wait_until(LIMIT, "the API port to answer", || async {
        reqwest::get(format!("{}/api/v1/openapi.json", api.base))
            .await
            .is_ok()
    })
    .await;
    assert_eq!(c.get("/api/v1/jobs").await.0, StatusCode::OK);
    let m = reqwest::get(format!("{metrics}/metrics")).await.unwrap();
    assert_eq!(m.status(), StatusCode::OK);
    let r = Client::new(&metrics, Some(key("u1")))
        .req(reqwest::Method::GET, "/api/v1/jobs")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the API is not on the metrics port"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_token_expires_and_at_shutdown() {
    let prefix = format!("sse-end-{}", ulid::Ulid::new());
    let mut api = spawn_api(&prefix, &tmpdir("sse-end")).await;
    // A JWT expiring in 2 s: its stream ends then (keep-alives alone do not keep it open).
    let mut short = Sse::open(&api.base, &jwt("u1", 2, SECRET), None).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), short.rx.recv()).await;
    assert!(
        matches!(ended, Ok(None)),
        "the stream outlived its token: {ended:?}"
    );
    // SIGTERM with a client connected: the process still stops (the stream ends).
    let _open = Sse::open(&api.base, &key("u2"), None).await;
    let pid = api.child.id().unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let st = tokio::time::timeout(Duration::from_secs(15), api.child.wait())
        .await
        .expect("the worker did not stop within 15 s with an SSE client connected")
        .unwrap();
    assert!(st.success(), "{st:?}");
}

#[tokio::test]
async fn a_resume_point_older_than_the_log_is_detected() {
    let mut conn = chatter_worker::queue::connect(&common::redis_url())
        .await
        .unwrap();
    let key = format!("gap-{}:events:log", ulid::Ulid::new());
    let e = |n: u64| chatter_worker::events::Event::new("job.started", Some("u1"), json!({"n": n}));
    chatter_worker::queue::events::append(&mut conn, &key, 1000, &[e(1), e(2), e(3)])
        .await
        .unwrap();
    let all = chatter_worker::queue::events::range_after(&mut conn, &key, Default::default(), 10)
        .await
        .unwrap();
    let ids: Vec<_> = all.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), 3);
    let _: () = redis::cmd("XTRIM")
        .arg(&key)
        .arg("MAXLEN")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let gap = |id| {
        let (mut conn, key) = (conn.clone(), key.clone());
        async move {
            chatter_worker::queue::events::trimmed_after(&mut conn, &key, id)
                .await
                .unwrap()
        }
    };
    assert!(gap(ids[0]).await, "entries 1 and 2 were trimmed");
    assert!(!gap(ids[2]).await, "entry 3 is still there");
    assert!(
        !chatter_worker::queue::events::trimmed_after(&mut conn, "no-such-stream", ids[0])
            .await
            .unwrap()
    );
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_posts_from_other_sites_and_non_admins_are_refused() {
    let prefix = format!("dash-csrf-{}", ulid::Ulid::new());
    let api = spawn_api(&prefix, &tmpdir("csrf")).await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let pause = format!("{}/dashboard/queues/maintenance/pause", api.base);
    // The session cookie a login gives (a user's key logs in no one: no session).
    let mut sessions = std::collections::HashMap::new();
    for who in ["admin", "u1"] {
        let r = c
            .post(format!("{}/dashboard/login", api.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", key(who)))
            .send()
            .await
            .unwrap();
        let set = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        sessions.insert(who, set.unwrap_or_else(|| "cw_session=none".into()));
    }
    let cookie = |who: &str| sessions[who].clone();
    for (name, header, value) in [
        ("fetch metadata", "sec-fetch-site", "cross-site"),
        ("origin", "origin", "http://evil.example"),
    ] {
        let r = c
            .post(&pause)
            .header("cookie", cookie("admin"))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
    }
    // A user logs in to no session; a user's key is no admin's; no cookie goes to the login page.
    assert_eq!(cookie("u1"), "cw_session=none");
    let r = c
        .post(&pause)
        .header("authorization", format!("Bearer {}", key("u1")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .get(format!("{}/dashboard", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/dashboard/login");
    // From the dashboard itself: paused.
    let r = c
        .post(&pause)
        .header("cookie", cookie("admin"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let admin = Client::new(&api.base, Some(key("admin")));
    let (_, qs) = admin.get("/api/v1/jobs/stats/queues").await;
    let m = qs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "maintenance")
        .unwrap();
    assert_eq!(m["paused"], true, "{m}");
}
