//! Workflow runs in worker processes of the real binary: a worker killed with SIGKILL right
//! after a model call finished is replaced, and the retried job resumes after that node (the
//! provider sees its call once); `chatter-worker workflows run --wait` end to end; the worker's
//! /metrics shows runs, node durations, tool calls and provider tokens.
#[path = "common/mod.rs"]
mod common;
#[path = "common/docs.rs"]
mod docs;

use chatter_worker::bench::chat_server::{ChatServer, Reply};
use chatter_worker::jobs::kinds::workflows::{RunWorkflowArgs, run_job};
use chatter_worker::jobs::store::WorkflowStore;
use common::{WorkerProcess, wait_until};
use docs::{DocKit, LIMIT, doc_kit};
use serde_json::{Value, json};
use std::time::Duration;

fn config(k: &DocKit, chat: &ChatServer) -> String {
    let path = k.root.join(format!("worker-{}.toml", ulid::Ulid::new()));
    let weather = format!("{}/tools/get_weather", chat.root);
    std::fs::write(
        &path,
        format!(
            "[workflows]\nbase_url = \"{}\"\napi_key = \"sk-test\"\nallow_networks = [\"127.0.0.0/8\"]\n\
             [workflows.prices.\"gpt-4o-mini\"]\nprompt_per_million = 150.0\ncompletion_per_million = 600.0\n\
             [[workflows.tools]]\nname = \"get_weather\"\nurl = \"{weather}\"\n\
             parameters = {{ type = \"object\", properties = {{ city = {{ type = \"string\" }} }}, required = [\"city\"] }}\n\
             [[workflows.tools]]\nname = \"http_get\"\nurl = \"{weather}\"\n",
            chat.base_url
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn worker(k: &DocKit, config: &str) -> WorkerProcess {
    WorkerProcess::spawn(
        &k.h.url,
        &k.h.prefix,
        "workflows",
        &[
            "--database-url",
            &k.url,
            "--config",
            config,
            "--lease",
            "2s",
        ],
    )
}

fn count(chat: &ChatServer, text: &str) -> usize {
    chat.seen()
        .iter()
        .filter(|s| s.last_user().starts_with(text))
        .count()
}

#[tokio::test]
async fn a_worker_killed_after_a_model_call_is_resumed_without_repeating_it() {
    let k = doc_kit().await;
    let chat = ChatServer::start(true).await.unwrap();
    let cfg = config(&k, &chat);
    // start → first (llm) → second (llm) → end. The second call hangs on the first worker.
    let def = json!({"name": "two calls", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "first", "type": "llm", "config": {"model": "m", "stream": false, "prompt": "FIRST {{ input.message }}"}},
        {"id": "second", "type": "llm", "config": {"model": "m", "stream": false, "prompt": "SECOND after {{ last_response }}"}},
        {"id": "end", "type": "end"}],
      "edges": [{"id": "1", "source": "start", "target": "first"},
                {"id": "2", "source": "first", "target": "second"},
                {"id": "3", "source": "second", "target": "end"}]});
    chat.rule("SECOND", Reply::Hang(Duration::from_secs(120)));
    let job = run_job(&RunWorkflowArgs {
        definition: Some(def),
        definition_id: None,
        inputs: json!({"message": "hi"}),
        owner: "owner-1".into(),
        execution_id: None,
    })
    .build();
    let q = k.h.queue("workflows");
    q.enqueue(&job).await.unwrap();
    let w1 = worker(&k, &cfg);
    wait_until(LIMIT, "the second model call to start", || async {
        count(&chat, "SECOND") == 1
    })
    .await;
    // The first node's result was checkpointed before the second call was made.
    let steps: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workflow_steps WHERE execution_id = $1")
            .bind(&job.id)
            .fetch_one(&k.db)
            .await
            .unwrap();
    assert_eq!(steps, 2, "start and first checkpointed");
    w1.signal("KILL");
    w1.wait(Duration::from_secs(10)).await;
    chat.inner.rules.lock().unwrap().clear();
    let _w2 = worker(&k, &cfg);
    wait_until(
        LIMIT,
        "the run to complete on the second worker",
        || async { q.show(&job.id).await.unwrap().unwrap().status == "completed" },
    )
    .await;
    assert_eq!(
        count(&chat, "FIRST"),
        1,
        "the finished model call was not repeated"
    );
    assert_eq!(count(&chat, "SECOND"), 2, "the unfinished one was");
    let rec = q.show(&job.id).await.unwrap().unwrap();
    assert_eq!(rec.attempt, 2);
    let row = k.store.execution(&job.id).await.unwrap().unwrap();
    assert_eq!(row["status"], "completed");
    assert_eq!(
        row["output_data"]["response"],
        "echo: SECOND after echo: FIRST hi"
    );
    let nodes: Vec<&str> = row["execution_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["start", "first", "second", "end"]);
}

fn metric(body: &str, name: &str, label: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn workflows_run_waits_for_the_answer_and_the_worker_exports_workflow_metrics() {
    let k = doc_kit().await;
    let chat = ChatServer::start(true).await.unwrap();
    let cfg = config(&k, &chat);
    let w = worker(&k, &cfg);
    let library = |name: &str| {
        format!(
            "{}/workflows/library/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    // Async: the chat server answers on this test's runtime while the command runs.
    let cli = |args: &[&str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
            .args(args)
            .env("REDIS_URL", &k.h.url)
            .env("CW_PREFIX", &k.h.prefix)
            .output()
    };
    let out = cli(&[
        "workflows",
        "run",
        &library("plain_chat"),
        "--input",
        r#"{"message": "hi from the CLI", "conversation_id": "c"}"#,
        "--wait",
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "echo: hi from the CLI");

    chat.push(Reply::Tools(vec![(
        "get_weather".into(),
        json!({"city": "Oslo"}),
    )]));
    chat.push(Reply::Text("4 degrees".into()));
    let out = cli(&[
        "--json",
        "workflows",
        "run",
        &library("tool_agent"),
        "--input",
        r#"{"message": "weather?"}"#,
        "--wait",
    ])
    .await
    .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["result"]["tool_calls"], 1, "{v}");

    // An invalid definition is refused before anything is enqueued, naming the node.
    let bad = k.root.join("bad.json");
    std::fs::write(&bad, r#"{"name": "b", "nodes": [{"id": "s", "type": "start"},
        {"id": "ask", "type": "llm", "config": {}}, {"id": "e", "type": "end"}],
        "edges": [{"id": "1", "source": "s", "target": "ask"}, {"id": "2", "source": "ask", "target": "e"}]}"#).unwrap();
    let out = cli(&["workflows", "run", &bad.to_string_lossy()])
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node \"ask\": config.model: required"),
        "{err}"
    );

    let body = w.get("/metrics").await;
    assert!(
        metric(
            &body,
            "chatter_workflow_runs_total",
            "outcome=\"completed\""
        ) >= 2.0,
        "{body}"
    );
    assert!(
        metric(
            &body,
            "chatter_workflow_runs_total",
            "workflow=\"Tool-using agent\""
        ) >= 1.0
    );
    assert!(
        metric(
            &body,
            "chatter_workflow_node_duration_seconds_count",
            "kind=\"llm\""
        ) >= 3.0
    );
    assert!(
        metric(
            &body,
            "chatter_workflow_node_duration_seconds_count",
            "kind=\"tools\""
        ) >= 1.0
    );
    assert!(
        metric(
            &body,
            "chatter_workflow_tool_calls_total",
            "tool=\"get_weather\""
        ) >= 1.0
    );
    assert!(metric(&body, "chatter_llm_tokens_total", "kind=\"completion\"") > 0.0);
    assert!(
        metric(
            &body,
            "chatter_llm_request_duration_seconds_count",
            "provider=\"default\""
        ) >= 3.0
    );
}
