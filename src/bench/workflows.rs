//! `bench workflows`: what running a workflow costs besides the model. A 10-node workflow (two
//! model calls, variables, a condition, a delay) against a local chat server that answers at
//! once ([`super::chat_server`]):
//! - engine overhead per node: the executor alone with in-memory services (no provider, no
//!   checkpoints), and with every node checkpointed in PostgreSQL;
//! - runs/s end to end: `run_workflow` jobs through Redis and a worker pool in this process,
//!   each node checkpointed in PostgreSQL, model calls over HTTP;
//! - the peer, LangGraph (what Chatter runs today; `bench/peers/langgraph`), on the same graph
//!   and server: in memory, and with its PostgreSQL checkpointer.
use super::args::WorkflowsBenchArgs;
use super::chat_server::ChatServer;
use crate::outbox::BackendOutbox;
use crate::pool::{self, PoolConfig};
use crate::queue::{self, QueueOptions, RedisBackend, RedisQueue};
use chatter_jobs::chunk::guard::Guard;
use chatter_jobs::flow::chat::{ChatClient, ChatConfig};
use chatter_jobs::flow::tools::Tools;
use chatter_jobs::flow::{Runner, WorkflowSettings};
use chatter_jobs::kinds::workflows::{RunWorkflowArgs, run_job};
use chatter_jobs::registry::queues;
use chatter_jobs::store::workflows::{Begun, NewExecution};
use chatter_jobs::store::{Store, WorkflowStore};
use chatter_jobs::workflows::engine::{
    ChatRequest, ChatResponse, Checkpoints, Engine, Limits, RunOutcome, Services, StepError,
};
use chatter_jobs::workflows::state::{Message, Passage, State};
use chatter_jobs::workflows::{Workflow, parse_and_validate};
use chatter_jobs::{Job, Registry};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The benchmark's workflow: 10 nodes, all run, two model calls.
pub fn definition() -> Value {
    json!({"name": "bench10", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "set_topic", "type": "variable", "config": {"operation": "set", "variable": "topic", "value": "{{ input.topic }}"}},
        {"id": "ask", "type": "llm", "config": {"model": "bench", "stream": false, "system_prompt": "You are terse.", "prompt": "Tell me about {{ topic }}"}},
        {"id": "check", "type": "conditional"},
        {"id": "count", "type": "variable", "config": {"operation": "increment", "variable": "n"}},
        {"id": "remember", "type": "variable", "config": {"operation": "append", "variable": "notes", "value": "{{ last_response }}"}},
        {"id": "summarize", "type": "llm", "config": {"model": "bench", "stream": false, "prompt": "Summarize: {{ last_response }}"}},
        {"id": "pause", "type": "delay", "config": {"delay_type": "fixed", "duration_ms": 0}},
        {"id": "log", "type": "variable", "config": {"operation": "set", "variable": "done", "value": true}},
        {"id": "end", "type": "end"}],
      "edges": [
        {"id": "e1", "source": "start", "target": "set_topic"},
        {"id": "e2", "source": "set_topic", "target": "ask"},
        {"id": "e3", "source": "ask", "target": "check"},
        {"id": "e4", "source": "check", "target": "summarize", "data": {"condition": "has_tool_calls"}},
        {"id": "e5", "source": "check", "target": "count"},
        {"id": "e6", "source": "count", "target": "remember"},
        {"id": "e7", "source": "remember", "target": "summarize"},
        {"id": "e8", "source": "summarize", "target": "pause"},
        {"id": "e9", "source": "pause", "target": "log"},
        {"id": "e10", "source": "log", "target": "end"}]})
}

pub const NODES: usize = 10;

#[derive(Debug, Serialize)]
pub struct Overhead {
    pub runs: usize,
    pub rounds_us_per_node: Vec<f64>,
    /// Median of the rounds: executor time per node, model time excluded.
    pub us_per_node: f64,
}

#[derive(Debug, Serialize)]
pub struct EndToEnd {
    pub runs: usize,
    pub concurrency: usize,
    pub rounds_runs_per_s: Vec<f64>,
    pub runs_per_s: f64,
    /// Model calls the server answered per second (2 per run).
    pub llm_calls_per_s: f64,
    pub failed: usize,
}

#[derive(Debug, Serialize)]
pub struct WorkflowsReport {
    pub nodes: usize,
    pub llm_calls_per_run: usize,
    /// The executor with in-memory services and no checkpoints.
    pub engine_in_memory: Overhead,
    /// The executor with every node's state checkpointed in PostgreSQL.
    pub engine_checkpointed: Option<Overhead>,
    /// `run_workflow` jobs through Redis, a worker pool and PostgreSQL checkpoints.
    pub end_to_end: Option<EndToEnd>,
    pub end_to_end_error: Option<String>,
    /// LangGraph on the same graph and server: without a checkpointer, and with PostgreSQL.
    pub peer_in_memory: Option<Value>,
    pub peer_postgres: Option<Value>,
    pub peer_error: Option<String>,
    /// Ours over LangGraph: end-to-end runs/s (durable, against its PostgreSQL checkpointer)
    /// and per-node overhead (its in-memory graph over our in-memory engine).
    pub ratio_runs_per_s_vs_peer_postgres: Option<f64>,
    pub ratio_runs_per_s_vs_peer_in_memory: Option<f64>,
    pub ratio_peer_overhead_over_ours: Option<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Services answering at once, in memory: the model time is zero.
struct Instant0;

impl Services for Instant0 {
    fn chat<'a>(&'a self, _req: ChatRequest) -> BoxFuture<'a, Result<ChatResponse, StepError>> {
        Box::pin(async {
            Ok(ChatResponse {
                content: "ok".into(),
                prompt_tokens: 10,
                completion_tokens: 1,
                ..ChatResponse::default()
            })
        })
    }
    fn retrieve<'a>(
        &'a self,
        _q: &'a str,
        _l: usize,
        _d: &'a [String],
        _u: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Passage>, StepError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn call_tool<'a>(
        &'a self,
        _n: &'a str,
        _a: Value,
        _t: Duration,
    ) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(async { Ok(Value::Null) })
    }
    fn memory_load<'a>(
        &'a self,
        _k: &'a str,
        _w: usize,
    ) -> BoxFuture<'a, Result<Vec<Message>, StepError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn memory_store<'a>(
        &'a self,
        _k: &'a str,
        _m: &'a [Message],
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async { Ok(()) })
    }
}

struct NoCheckpoints;

impl Checkpoints for NoCheckpoints {
    fn save<'a>(&'a self, _s: &'a State) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Checkpoints into `workflow_steps` as the handler writes them.
struct PgCheckpoints {
    store: Store,
    execution: String,
}

impl Checkpoints for PgCheckpoints {
    fn save<'a>(&'a self, s: &'a State) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            match self.store.save_step(&self.execution, "bench", 1, s).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(StepError::fatal("no execution row")),
                Err(e) => Err(StepError::retryable(e.to_string())),
            }
        })
    }
}

fn limits() -> Limits {
    Limits {
        deadline: Instant::now() + Duration::from_secs(3600),
        ..Limits::chatter(Instant::now())
    }
}

/// Sequential runs of the workflow through the executor; µs per node.
async fn overhead(
    wf: &Workflow,
    runs: usize,
    checkpoints: &dyn Checkpoints,
) -> Result<f64, String> {
    let engine = Engine {
        workflow: wf,
        services: &Instant0,
        checkpoints,
        limits: limits(),
        cancel: CancellationToken::new(),
    };
    let started = Instant::now();
    for _ in 0..runs {
        let mut state = State::new(json!({"topic": "fjords"}), wf.start);
        match engine.run(&mut state).await {
            RunOutcome::Completed if state.step as usize == NODES => {}
            other => {
                return Err(format!(
                    "bench run ended {other:?} after {} steps",
                    state.step
                ));
            }
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / (runs * NODES) as f64)
}

/// A schema of its own in the database (dropped at the end), migrated.
async fn schema_store(database_url: &str) -> Result<(Store, Store, String), String> {
    let admin = Store::connect(database_url, 1)
        .await
        .map_err(|e| e.to_string())?;
    let schema = format!("bench_{}", ulid::Ulid::new().to_string().to_lowercase());
    admin
        .create_schema(&schema)
        .await
        .map_err(|e| e.to_string())?;
    let sep = if database_url.contains('?') { '&' } else { '?' };
    let url = format!("{database_url}{sep}options=-csearch_path%3D{schema},public");
    let store = Store::connect(&url, 20).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok((admin, store, schema))
}

async fn end_to_end(
    a: &WorkflowsBenchArgs,
    redis_url: &str,
    store: &Store,
    server: &ChatServer,
) -> Result<EndToEnd, String> {
    let conn = queue::connect(redis_url).await.map_err(|e| e.to_string())?;
    let prefix = format!("bench-wf-{}", ulid::Ulid::new());
    let q = RedisQueue::new(
        conn.clone(),
        &prefix,
        queues::WORKFLOWS,
        QueueOptions::default(),
    );
    let client = ChatClient::new(ChatConfig {
        name: "bench".into(),
        base_url: server.base_url.clone(),
        api_key: None,
        timeout: Duration::from_secs(30),
    })?;
    let outbox = Arc::new(BackendOutbox::new(
        Arc::new(queue::RedisBackend::new(redis_url, &prefix, conn.clone())),
        QueueOptions::default(),
    ));
    let runner = Runner::new(
        WorkflowSettings::default(),
        store.clone(),
        outbox,
        vec![client],
        Some("bench".into()),
        Tools::new(Vec::new(), Guard::default())?,
        None,
        Guard::default(),
    )?;
    let mut registry = Registry::builtin();
    Arc::new(runner).install(&mut registry);
    let shutdown = CancellationToken::new();
    let pool = tokio::spawn(pool::run(
        Arc::new(RedisBackend::new(redis_url, &prefix, conn.clone())),
        Arc::new(q.clone()),
        registry,
        PoolConfig {
            concurrency: a.concurrency,
            idle_wait: Duration::from_millis(50),
            ..PoolConfig::default()
        },
        shutdown.clone(),
    ));
    let mut rounds = Vec::new();
    let mut failed = 0;
    for round in 0..a.rounds + 1 {
        let jobs: Vec<Job> = (0..a.runs)
            .map(|_| {
                run_job(&RunWorkflowArgs {
                    definition: Some(definition()),
                    definition_id: None,
                    inputs: json!({"topic": "fjords"}),
                    owner: "bench".into(),
                    execution_id: None,
                })
                .max_retries(0)
                .build()
            })
            .collect();
        let started = Instant::now();
        q.enqueue_batch(&jobs).await.map_err(|e| e.to_string())?;
        let total = (round + 1) * a.runs;
        loop {
            let s = q.stats().await.map_err(|e| e.to_string())?;
            if (s.finished + s.dead) as usize >= total {
                failed = s.dead as usize;
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                return Err(format!("runs did not finish: {s:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        // Round 0 warms connections and caches.
        if round > 0 {
            rounds.push(a.runs as f64 / secs);
        }
        eprintln!(
            "workflows end to end, round {round}: {:.1} runs/s",
            a.runs as f64 / secs
        );
    }
    shutdown.cancel();
    let _ = pool.await;
    let _ = crate::queue::delete_matching(redis_url, &format!("{prefix}*")).await;
    let runs_per_s = median(&rounds);
    Ok(EndToEnd {
        runs: a.runs,
        concurrency: a.concurrency,
        rounds_runs_per_s: rounds,
        runs_per_s,
        llm_calls_per_s: runs_per_s * 2.0,
        failed,
    })
}

fn peer(a: &WorkflowsBenchArgs, base_url: &str, postgres: Option<&str>) -> Result<Value, String> {
    super::run_peer("langgraph", "bench.py", |cmd| {
        cmd.args(["--base-url", base_url])
            .args(["--runs", &a.runs.to_string()])
            .args(["--concurrency", &a.concurrency.to_string()])
            .args(["--rounds", &a.rounds.to_string()]);
        if let Some(dsn) = postgres {
            cmd.args(["--postgres", dsn]);
        }
    })
}

pub async fn run(
    a: &WorkflowsBenchArgs,
    redis_url: &str,
    database_url: Option<&str>,
) -> Result<WorkflowsReport, String> {
    let wf = parse_and_validate(&definition().to_string()).map_err(|e| e.to_string())?;
    let mut rounds = Vec::new();
    overhead(&wf, a.engine_runs / 10 + 1, &NoCheckpoints).await?;
    for _ in 0..a.rounds {
        rounds.push(overhead(&wf, a.engine_runs, &NoCheckpoints).await?);
    }
    let engine_in_memory = Overhead {
        runs: a.engine_runs,
        us_per_node: median(&rounds),
        rounds_us_per_node: rounds,
    };
    eprintln!(
        "engine in memory: {:.2} µs/node",
        engine_in_memory.us_per_node
    );
    let server = ChatServer::start(false).await.map_err(|e| e.to_string())?;
    let mut report = WorkflowsReport {
        nodes: NODES,
        llm_calls_per_run: 2,
        engine_in_memory,
        engine_checkpointed: None,
        end_to_end: None,
        end_to_end_error: None,
        peer_in_memory: None,
        peer_postgres: None,
        peer_error: None,
        ratio_runs_per_s_vs_peer_postgres: None,
        ratio_runs_per_s_vs_peer_in_memory: None,
        ratio_peer_overhead_over_ours: None,
    };
    let db = match database_url {
        Some(url) => Some(schema_store(url).await?),
        None => {
            report.end_to_end_error = Some("no DATABASE_URL: checkpoints need PostgreSQL".into());
            None
        }
    };
    if let Some((_, store, _)) = &db {
        // The execution the checkpoints are written under (running, claim 1 of job `bench`).
        let begun = store
            .begin_execution(&NewExecution {
                id: "bench",
                definition_id: None,
                owner_id: "bench",
                workflow_type: "custom",
                config: &Value::Null,
                inputs: &json!({}),
                job_id: "bench",
                fence: 1,
            })
            .await
            .map_err(|e| e.to_string())?;
        if !matches!(begun, Begun::Running { .. }) {
            return Err(format!("bench execution not started: {begun:?}"));
        }
        let cp = PgCheckpoints {
            store: store.clone(),
            execution: "bench".into(),
        };
        let runs = (a.engine_runs / 10).max(20);
        let mut rounds = Vec::new();
        for _ in 0..a.rounds {
            rounds.push(overhead(&wf, runs, &cp).await?);
        }
        let o = Overhead {
            runs,
            us_per_node: median(&rounds),
            rounds_us_per_node: rounds,
        };
        eprintln!("engine checkpointed: {:.1} µs/node", o.us_per_node);
        report.engine_checkpointed = Some(o);
        match end_to_end(a, redis_url, store, &server).await {
            Ok(e) => report.end_to_end = Some(e),
            Err(e) => report.end_to_end_error = Some(e),
        }
    }
    if !a.no_peer {
        match peer(a, &server.base_url, None) {
            Ok(v) => report.peer_in_memory = Some(v),
            Err(e) => report.peer_error = Some(e),
        }
        if let Some(url) = database_url {
            match peer_database(url)
                .await
                .and_then(|dsn| peer(a, &server.base_url, Some(&dsn)).map(|v| (v, dsn)))
            {
                Ok((v, _)) => report.peer_postgres = Some(v),
                Err(e) => report.peer_error = Some(e),
            }
        }
    }
    let rate = |v: &Option<Value>| v.as_ref().and_then(|p| p["runs_per_s"].as_f64());
    if let Some(e) = &report.end_to_end {
        report.ratio_runs_per_s_vs_peer_postgres =
            rate(&report.peer_postgres).map(|p| e.runs_per_s / p);
        report.ratio_runs_per_s_vs_peer_in_memory =
            rate(&report.peer_in_memory).map(|p| e.runs_per_s / p);
    }
    report.ratio_peer_overhead_over_ours = report
        .peer_in_memory
        .as_ref()
        .and_then(|p| p["per_node_overhead_us"].as_f64())
        .map(|p| p / report.engine_in_memory.us_per_node);
    if let Some((admin, store, schema)) = db {
        store.close().await;
        let _ = admin.drop_schema(&schema).await;
    }
    Ok(report)
}

/// A database of its own for LangGraph's checkpoint tables, beside the test database.
async fn peer_database(url: &str) -> Result<String, String> {
    let admin = Store::connect(url, 1).await.map_err(|e| e.to_string())?;
    admin
        .create_database("cw_bench_langgraph")
        .await
        .map_err(|e| e.to_string())?;
    let base = url.split('?').next().unwrap_or(url);
    match base.rsplit_once('/') {
        Some((server, _db)) if server.contains("://") && !server.ends_with('/') => {
            Ok(format!("{server}/cw_bench_langgraph"))
        }
        _ => Err(format!("cannot name another database in {url:?}")),
    }
}
