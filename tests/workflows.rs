//! Workflow runs through a real pool on the real Redis and PostgreSQL of `scripts/test.sh`, with
//! a local server speaking the OpenAI chat protocol (and embeddings, for retrieval) in place of
//! the third-party providers: the library end to end (streaming, tool calls, memory,
//! retrieval), invalid definitions refused at enqueue, the URL guard, cancellation mid-stream,
//! resumption from checkpoints.
#[path = "common/mod.rs"]
mod common;
#[path = "common/docs.rs"]
mod docs;
#[path = "common/embed.rs"]
mod embed;
#[path = "common/fake_openai.rs"]
mod fake_openai;

use chatter_worker::bench::chat_server::{ChatServer, Reply};
use chatter_worker::jobs::chunk::guard::Guard;
use chatter_worker::jobs::embed::Embedder;
use chatter_worker::jobs::flow::chat::{ChatClient, ChatConfig};
use chatter_worker::jobs::flow::tools::{ToolSpec, Tools};
use chatter_worker::jobs::flow::{Price, Runner, WorkflowSettings};
use chatter_worker::jobs::kinds::workflows::{RUN_WORKFLOW, RunWorkflowArgs, run_job};
use chatter_worker::jobs::store::WorkflowStore;
use chatter_worker::jobs::{Job, Registry};
use chatter_worker::queue::RedisQueue;
use common::{PoolHandle, pool_config, wait_until};
use docs::{DocKit, LIMIT, doc_kit};
use fake_openai::FakeOpenAi;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Kit {
    k: DocKit,
    chat: ChatServer,
    embedder: Arc<Embedder>,
    wq: RedisQueue,
}

async fn kit() -> Kit {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    let embedder = embed::default_embedder(&k, &fake).await;
    let chat = ChatServer::start(true).await.unwrap();
    let wq = k.h.queue("workflows");
    Kit {
        k,
        chat,
        embedder,
        wq,
    }
}

fn tool(name: &str, url: &str) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: format!("{name} of a city"),
        url: url.into(),
        method: "POST".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}),
        timeout_ms: None,
        headers: BTreeMap::new(),
    }
}

impl Kit {
    /// A runner whose tools are the chat server's weather tool (twice, as the library's two
    /// tool names) plus `extra`; `allow` lists the networks the URL guard lets through.
    fn runner(
        &self,
        allow: &[&str],
        extra: Vec<ToolSpec>,
        settings: WorkflowSettings,
    ) -> Arc<Runner> {
        let guard = Guard::new(allow.iter().map(|n| n.parse().unwrap()).collect());
        let weather = format!("{}/tools/get_weather", self.chat.root);
        let mut specs = vec![tool("get_weather", &weather), tool("http_get", &weather)];
        specs.extend(extra);
        let tools = Tools::new(specs, guard.clone()).unwrap();
        let client = ChatClient::new(ChatConfig {
            name: "default".into(),
            base_url: self.chat.base_url.clone(),
            api_key: Some("sk-test".into()),
            timeout: Duration::from_secs(30),
        })
        .unwrap();
        Arc::new(
            Runner::new(
                settings,
                self.k.store.clone(),
                self.k.outbox(),
                vec![client],
                Some("default".into()),
                tools,
                Some(self.embedder.clone()),
                guard,
            )
            .unwrap(),
        )
    }

    fn settings() -> WorkflowSettings {
        WorkflowSettings {
            prices: HashMap::from([(
                "gpt-4o-mini".to_string(),
                Price {
                    prompt_per_million: 150.0,
                    completion_per_million: 600.0,
                },
            )]),
            ..WorkflowSettings::default()
        }
    }

    fn pool(&self, runner: &Arc<Runner>) -> PoolHandle {
        let mut reg = Registry::builtin();
        runner.clone().install(&mut reg);
        self.k.h.start_pool(&self.wq, reg, pool_config(4))
    }

    fn job(&self, def: Value, inputs: Value) -> Job {
        run_job(&RunWorkflowArgs {
            definition: Some(def),
            definition_id: None,
            inputs,
            owner: "owner-1".into(),
            execution_id: None,
        })
        .owner("owner-1")
        .max_retries(0)
        .build()
    }

    /// Enqueue a run and wait for its job to end; returns (job status, execution row).
    async fn run(&self, def: Value, inputs: Value) -> (String, Value) {
        let job = self.job(def, inputs);
        self.wq.enqueue(&job).await.unwrap();
        self.wait(&job.id).await
    }

    async fn wait(&self, id: &str) -> (String, Value) {
        let final_status = || async {
            let r = self.wq.show(id).await.unwrap().unwrap();
            matches!(r.status.as_str(), "completed" | "failed" | "cancelled")
                .then_some(r.status.to_string())
        };
        wait_until(LIMIT, "the run to end", || async {
            final_status().await.is_some()
        })
        .await;
        let status = final_status().await.unwrap();
        let row = self
            .k
            .store
            .execution(id)
            .await
            .unwrap()
            .unwrap_or(Value::Null);
        (status, row)
    }
}

fn library(name: &str) -> Value {
    let path = format!(
        "{}/workflows/library/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every event on the events channel, from now on.
async fn events(k: &DocKit) -> futures::channel::mpsc::UnboundedReceiver<Value> {
    let client = redis::Client::open(k.h.url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(k.q.keys().events_channel()).await.unwrap();
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        let mut stream = pubsub.on_message();
        while let Some(m) = stream.next().await {
            if let Ok(v) = serde_json::from_str::<Value>(&m.get_payload::<String>().unwrap()) {
                let _ = tx.unbounded_send(v);
            }
        }
    });
    rx
}

#[tokio::test]
async fn every_library_workflow_runs_end_to_end() {
    let kit = kit().await;
    let runner = kit.runner(&["127.0.0.0/8"], vec![], Kit::settings());
    let (chunking, embedding) = embed::pools(&kit.k, &kit.embedder, 50);
    let doc = kit
        .k
        .ingest(
            &kit.k.file(
                "fjords.txt",
                b"The Sognefjord is the longest fjord in Norway, 205 kilometres long.\n\n\
                  Oslo has cold winters; the harbour freezes in some years.",
            ),
            None,
            None,
        )
        .await;
    assert_eq!(doc.status, "processed", "{doc:?}");
    let pool = kit.pool(&runner);
    let mut events = events(&kit.k).await;

    // Plain chat, streamed, with memory: the second turn sees the first.
    let (status, row) = kit
        .run(
            library("plain_chat"),
            json!({"message": "hello there", "conversation_id": "c1"}),
        )
        .await;
    assert_eq!(status, "completed", "{row}");
    assert_eq!(row["status"], "completed");
    assert_eq!(row["output_data"]["response"], "echo: hello there");
    assert!(row["tokens_used"].as_i64().unwrap() > 0, "{row}");
    assert!(row["cost"].as_f64().unwrap() > 0.0, "priced: {row}");
    assert_eq!(row["execution_log"].as_array().unwrap().len(), 5, "{row}");
    let mut streamed = String::new();
    while streamed != "echo: hello there" {
        let e = tokio::time::timeout(LIMIT, events.next())
            .await
            .unwrap()
            .unwrap();
        if e["type"] == "workflow.token" {
            assert_eq!(e["owner_id"], "owner-1");
            assert_eq!(e["node"], "chat");
            streamed.push_str(e["delta"].as_str().unwrap());
        }
    }
    let (status, _) = kit
        .run(
            library("plain_chat"),
            json!({"message": "second turn", "conversation_id": "c1"}),
        )
        .await;
    assert_eq!(status, "completed");
    let last = kit.chat.seen().last().unwrap().body.clone();
    let texts: Vec<&str> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(
        texts.contains(&"hello there") && texts.contains(&"echo: hello there"),
        "{texts:?}"
    );
    assert_eq!(last["stream"], true);

    // RAG: the retrieved passage is in the model's system prompt.
    let (status, row) = kit
        .run(
            library("rag_answer"),
            json!({"message": "How long is the Sognefjord?"}),
        )
        .await;
    assert_eq!(status, "completed", "{row}");
    let system = kit.chat.seen().last().unwrap().body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.contains("205 kilometres"), "{system}");

    // Tool agent: the model asks for the weather (streamed tool-call deltas), the tool answers,
    // the model answers with it.
    kit.chat.push(Reply::Tools(vec![(
        "get_weather".into(),
        json!({"city": "Oslo"}),
    )]));
    kit.chat
        .push(Reply::Text("It is 4 degrees in Oslo.".into()));
    let (status, row) = kit
        .run(
            library("tool_agent"),
            json!({"message": "Weather in Oslo?"}),
        )
        .await;
    assert_eq!(status, "completed", "{row}");
    assert_eq!(row["output_data"]["response"], "It is 4 degrees in Oslo.");
    assert_eq!(row["output_data"]["tool_calls"], 1);
    assert_eq!(
        kit.chat.inner.tool_calls.lock().unwrap().as_slice(),
        [json!({"city": "Oslo"})]
    );
    let answer = kit.chat.seen().last().unwrap().body.clone();
    let tool_msg = answer["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(tool_msg["role"], "tool");
    assert!(
        tool_msg["content"].as_str().unwrap().contains("overcast"),
        "{tool_msg}"
    );
    assert_eq!(answer["tools"][0]["function"]["name"], "get_weather");

    // Document summary: retrieval of the owner's chunks, then a summary kept in a variable.
    kit.chat.push(Reply::Text("- Sognefjord is 205 km".into()));
    let (status, row) = kit.run(library("document_summary"), json!({})).await;
    assert_eq!(status, "completed", "{row}");
    assert_eq!(row["output_data"]["response"], "- Sognefjord is 205 km");
    assert_eq!(
        row["output_data"]["variables"]["summary"],
        "- Sognefjord is 205 km"
    );

    pool.stop().await;
    chunking.stop().await;
    embedding.stop().await;
}

/// A base definition (start → ask → end) and mutations of it, each invalid in one way.
fn invalid_definitions() -> Vec<(&'static str, Value, &'static str)> {
    let base = json!({"name": "t", "nodes": [
        {"id": "s", "type": "start"},
        {"id": "ask", "type": "llm", "config": {"model": "m", "prompt": "{{ input.message }}"}},
        {"id": "e", "type": "end"}],
      "edges": [{"id": "e1", "source": "s", "target": "ask"},
                {"id": "e2", "source": "ask", "target": "e"}]});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        f(&mut v);
        v
    };
    let node = |v: &mut Value, n: Value| v["nodes"].as_array_mut().unwrap().push(n);
    let edge = |v: &mut Value, e: Value| v["edges"].as_array_mut().unwrap().push(e);
    vec![
        (
            "cycle without a loop",
            with(&|v| edge(v, json!({"id": "back", "source": "ask", "target": "ask"}))),
            "node \"ask\"",
        ),
        (
            "two starts",
            with(&|v| {
                node(v, json!({"id": "s2", "type": "start"}));
                edge(v, json!({"id": "x", "source": "s2", "target": "ask"}));
            }),
            "\"s2\"",
        ),
        (
            "dangling edge",
            with(&|v| edge(v, json!({"id": "d", "source": "ask", "target": "ghost"}))),
            "edge \"d\"",
        ),
        (
            "unknown kind",
            with(&|v| v["nodes"][1]["type"] = json!("telepathy")),
            "node \"ask\"",
        ),
        (
            "bad condition syntax",
            with(&|v| v["edges"][1]["data"] = json!({"condition": "tool_calls >> 1"})),
            "edge \"e2\"",
        ),
        (
            "101 nodes",
            with(&|v| {
                for i in 0..98 {
                    node(v, json!({"id": format!("n{i}"), "type": "conditional"}));
                }
            }),
            "101 nodes",
        ),
        (
            "template error",
            with(&|v| v["nodes"][1]["config"]["prompt"] = json!("{{ input.message ")),
            "node \"ask\"",
        ),
        (
            "missing model",
            with(&|v| v["nodes"][1]["config"] = json!({"prompt": "hi"})),
            "node \"ask\": config.model",
        ),
        (
            "no end reachable",
            with(&|v| {
                v["edges"]
                    .as_array_mut()
                    .unwrap()
                    .pop()
                    .map(|_| ())
                    .unwrap()
            }),
            "end",
        ),
        (
            "no start",
            with(&|v| v["nodes"][0]["type"] = json!("conditional")),
            "start",
        ),
        (
            "loop without bound",
            with(&|v| {
                node(
                    v,
                    json!({"id": "l", "type": "loop", "config": {"max_iterations": 0}}),
                );
                edge(v, json!({"id": "x", "source": "ask", "target": "l"}));
                edge(
                    v,
                    json!({"id": "y", "source": "l", "target": "ask", "data": {"condition": "loop_l_continue"}}),
                );
            }),
            "node \"l\"",
        ),
        (
            "tools without tools",
            with(&|v| {
                node(
                    v,
                    json!({"id": "t", "type": "tools", "config": {"available_tools": []}}),
                );
                edge(v, json!({"id": "x", "source": "ask", "target": "t"}));
                edge(v, json!({"id": "y", "source": "t", "target": "e"}));
            }),
            "node \"t\"",
        ),
        (
            "retrieval limit",
            with(&|v| {
                node(
                    v,
                    json!({"id": "r", "type": "retrieval", "config": {"limit": 1000}}),
                );
                edge(v, json!({"id": "x", "source": "s", "target": "r"}));
                edge(v, json!({"id": "y", "source": "r", "target": "e"}));
            }),
            "node \"r\"",
        ),
        (
            "unknown variable operation",
            with(&|v| {
                node(
                    v,
                    json!({"id": "var", "type": "variable", "config": {"operation": "explode", "variable": "x"}}),
                );
                edge(v, json!({"id": "x", "source": "ask", "target": "var"}));
                edge(v, json!({"id": "y", "source": "var", "target": "e"}));
            }),
            "node \"var\"",
        ),
        (
            "duplicate node id",
            with(&|v| node(v, json!({"id": "ask", "type": "conditional"}))),
            "node \"ask\"",
        ),
        (
            "unknown condition",
            with(&|v| v["edges"][1]["data"] = json!({"condition": "moon_is_full"})),
            "edge \"e2\"",
        ),
        (
            "negative temperature",
            with(&|v| v["nodes"][1]["config"]["temperature"] = json!(-1)),
            "node \"ask\"",
        ),
        (
            "retrieval url not http",
            with(&|v| {
                node(
                    v,
                    json!({"id": "r", "type": "retrieval", "config": {"url": "file:///etc/passwd"}}),
                );
                edge(v, json!({"id": "x", "source": "s", "target": "r"}));
                edge(v, json!({"id": "y", "source": "r", "target": "e"}));
            }),
            "node \"r\": config.url",
        ),
    ]
}

#[tokio::test]
async fn invalid_definitions_are_refused_at_enqueue_and_never_crash_a_worker() {
    let kit = kit().await;
    let registry = Registry::builtin();
    let spec = registry.resolve(RUN_WORKFLOW).unwrap();
    let cases = invalid_definitions();
    assert!(cases.len() >= 15);
    for (what, def, names) in &cases {
        let job = kit.job(def.clone(), json!({"message": "hi"}));
        let err = (spec.check)(&job).expect_err(what);
        println!("{what}: {err}");
        assert!(
            err.contains(names),
            "{what}: {err:?} does not name {names:?}"
        );
    }
    // A producer that skips the check: every bad run is dead-lettered with the reason, and the
    // worker goes on to run a good one.
    let runner = kit.runner(&[], vec![], Kit::settings());
    let pool = kit.pool(&runner);
    let mut ids = Vec::new();
    for (_, def, _) in &cases {
        let job = kit.job(def.clone(), json!({"message": "hi"}));
        kit.wq.enqueue(&job).await.unwrap();
        ids.push(job.id);
    }
    for id in &ids {
        let (status, _) = kit.wait(id).await;
        assert_eq!(status, "failed");
        let rec = kit.wq.show(id).await.unwrap().unwrap();
        assert!(rec.error_message.unwrap().contains("definition"), "{id}");
    }
    let (status, row) = kit
        .run(cases[0].1.clone().pipe_fix(), json!({"message": "ok"}))
        .await;
    assert_eq!(
        (status.as_str(), &row["output_data"]["response"]),
        ("completed", &json!("echo: ok"))
    );
    pool.stop().await;
}

trait PipeFix {
    /// The base definition again (the first case minus its extra edge).
    fn pipe_fix(self) -> Value;
}

impl PipeFix for Value {
    fn pipe_fix(mut self) -> Value {
        self["edges"].as_array_mut().unwrap().pop();
        self
    }
}

#[tokio::test]
async fn tool_and_retrieval_urls_to_private_addresses_are_refused_unless_allowed() {
    let kit = kit().await;
    let private = [
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x",
    ];
    let extra: Vec<ToolSpec> = private
        .iter()
        .enumerate()
        .map(|(i, u)| tool(&format!("private{i}"), u))
        .collect();
    let closed = kit.runner(&[], extra.clone(), Kit::settings());
    let pool = kit.pool(&closed);
    // Tools: the model asks for all three private tools and the (loopback) weather tool; each
    // call is refused by the guard, the refusal goes back to the model, nothing is sent.
    let agent = {
        let mut d = library("tool_agent");
        let names = json!(["get_weather", "private0", "private1", "private2"]);
        d["nodes"][1]["config"]["tools"] = names.clone();
        d["nodes"][3]["config"]["available_tools"] = names;
        d
    };
    kit.chat.push(Reply::Tools(vec![
        ("get_weather".into(), json!({"city": "Oslo"})),
        ("private0".into(), json!({"city": "a"})),
        ("private1".into(), json!({"city": "b"})),
        ("private2".into(), json!({"city": "c"})),
    ]));
    kit.chat.push(Reply::Text("no tools worked".into()));
    let (status, row) = kit.run(agent.clone(), json!({"message": "go"})).await;
    assert_eq!(status, "completed", "{row}");
    let errors = row["output_data"]["errors"].as_array().unwrap().clone();
    assert_eq!(errors.len(), 4, "{errors:?}");
    for e in &errors {
        assert!(
            e.as_str().unwrap().contains("blocked by the URL guard"),
            "{e}"
        );
    }
    assert!(kit.chat.inner.tool_calls.lock().unwrap().is_empty());
    // Retrieval from a service URL at each private address: refused, the run fails naming it.
    for url in private
        .iter()
        .chain(&[&*format!("{}/retrieve", kit.chat.root)])
    {
        let def = json!({"name": "r", "nodes": [
            {"id": "s", "type": "start"},
            {"id": "r", "type": "retrieval", "config": {"url": url, "query": "fjords"}},
            {"id": "e", "type": "end", "config": {"output": "{{ retrieved | length }}"}}],
          "edges": [{"id": "1", "source": "s", "target": "r"}, {"id": "2", "source": "r", "target": "e"}]});
        let (status, row) = kit.run(def, json!({})).await;
        assert_eq!(status, "failed", "{url}: {row}");
        let err = row["error_message"].as_str().unwrap();
        assert!(
            err.contains("blocked by the URL guard") && err.contains("node \"r\""),
            "{err}"
        );
    }
    pool.stop().await;

    // Allowed: loopback listed in allow_networks.
    let open = kit.runner(&["127.0.0.0/8"], extra, Kit::settings());
    let pool = kit.pool(&open);
    kit.chat.push(Reply::Tools(vec![(
        "get_weather".into(),
        json!({"city": "Oslo"}),
    )]));
    kit.chat.push(Reply::Text("4 degrees".into()));
    let (status, row) = kit.run(agent, json!({"message": "go"})).await;
    assert_eq!(
        (
            status.as_str(),
            row["output_data"]["errors"].as_array().unwrap().len()
        ),
        ("completed", 0)
    );
    let def = json!({"name": "r", "nodes": [
        {"id": "s", "type": "start"},
        {"id": "r", "type": "retrieval", "config": {"url": format!("{}/retrieve", kit.chat.root), "query": "fjords", "limit": 2}},
        {"id": "e", "type": "end", "config": {"output": "{{ retrieved[0].content }}"}}],
      "edges": [{"id": "1", "source": "s", "target": "r"}, {"id": "2", "source": "r", "target": "e"}]});
    let (status, row) = kit.run(def, json!({})).await;
    assert_eq!(status, "completed", "{row}");
    assert_eq!(
        row["output_data"]["response"],
        "external passage 0 about fjords"
    );
    assert_eq!(
        kit.chat.inner.retrievals.lock().unwrap()[0]["owner_id"],
        "owner-1"
    );
    pool.stop().await;
}

#[tokio::test]
async fn cancelling_a_run_mid_stream_ends_it_cancelled_within_a_second() {
    let kit = kit().await;
    let runner = kit.runner(&[], vec![], Kit::settings());
    let pool = kit.pool(&runner);
    let mut events = events(&kit.k).await;
    kit.chat.push(Reply::Slow {
        tokens: 400,
        gap: Duration::from_millis(50),
    });
    let job = kit.job(
        library("rag_answer").pipe_rag_to_chat(),
        json!({"message": "long story"}),
    );
    kit.wq.enqueue(&job).await.unwrap();
    // Three tokens reached the owner: the model is mid-stream.
    let mut tokens = 0;
    while tokens < 3 {
        let e = tokio::time::timeout(LIMIT, events.next())
            .await
            .unwrap()
            .unwrap();
        if e["type"] == "workflow.token" && e["job_id"] == job.id.as_str() {
            tokens += 1;
        }
    }
    let asked = Instant::now();
    assert!(kit.wq.cancel(&job.id).await.is_ok());
    wait_until(LIMIT, "the execution to be cancelled", || async {
        kit.k.store.execution(&job.id).await.unwrap().unwrap()["status"] == "cancelled"
    })
    .await;
    let took = asked.elapsed();
    println!("cancelled {took:?} after the request, mid-stream");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let (status, row) = kit.wait(&job.id).await;
    assert_eq!(status, "cancelled");
    assert_eq!(row["error_message"], "cancelled");
    pool.stop().await;
}

trait RagToChat {
    /// rag_answer without its retrieval node (start → answer → end).
    fn pipe_rag_to_chat(self) -> Value;
}

impl RagToChat for Value {
    fn pipe_rag_to_chat(mut self) -> Value {
        self["nodes"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["id"] != "search");
        self["edges"] = json!([{"id": "1", "source": "start", "target": "answer"},
                              {"id": "2", "source": "answer", "target": "end"}]);
        self
    }
}

#[tokio::test]
async fn a_rerun_of_a_finished_execution_returns_its_output_without_calling_the_model() {
    let kit = kit().await;
    let runner = kit.runner(&[], vec![], Kit::settings());
    let pool = kit.pool(&runner);
    let def = library("rag_answer").pipe_rag_to_chat();
    let mut args = RunWorkflowArgs {
        definition: Some(def),
        definition_id: None,
        inputs: json!({"message": "once"}),
        owner: "owner-1".into(),
        execution_id: Some("exec-fixed-1".into()),
    };
    let first = run_job(&args).build();
    kit.wq.enqueue(&first).await.unwrap();
    kit.wait(&first.id).await;
    let calls = kit.chat.seen().len();
    let second = run_job(&args).build();
    kit.wq.enqueue(&second).await.unwrap();
    let (status, _) = kit.wait(&second.id).await;
    assert_eq!(status, "completed");
    assert_eq!(kit.chat.seen().len(), calls, "no second model call");
    let rec = kit.wq.show(&second.id).await.unwrap().unwrap();
    assert_eq!(rec.result.unwrap()["response"], "echo: once");
    // Another owner cannot take the execution over.
    args.owner = "owner-2".into();
    let third = run_job(&args).build();
    kit.wq.enqueue(&third).await.unwrap();
    assert_eq!(kit.wait(&third.id).await.0, "failed");
    let rec = kit.wq.show(&third.id).await.unwrap().unwrap();
    assert!(rec.error_message.unwrap().contains("another owner"));
    pool.stop().await;
}

#[tokio::test]
async fn a_stored_definition_runs_by_id_for_its_owner_only() {
    let kit = kit().await;
    let runner = kit.runner(&[], vec![], Kit::settings());
    let pool = kit.pool(&runner);
    let def = library("rag_answer").pipe_rag_to_chat();
    let id = kit
        .k
        .store
        .put_workflow_definition("owner-1", &def)
        .await
        .unwrap();
    let by_id = |owner: &str| {
        run_job(&RunWorkflowArgs {
            definition: None,
            definition_id: Some(id.clone()),
            inputs: json!({"message": "stored"}),
            owner: owner.into(),
            execution_id: None,
        })
        .max_retries(0)
        .build()
    };
    let mine = by_id("owner-1");
    kit.wq.enqueue(&mine).await.unwrap();
    let (status, row) = kit.wait(&mine.id).await;
    assert_eq!(status, "completed", "{row}");
    assert_eq!(row["workflow_type"], "definition");
    assert_eq!(row["definition_id"], id.as_str());
    assert_eq!(row["output_data"]["response"], "echo: stored");
    let theirs = by_id("owner-2");
    kit.wq.enqueue(&theirs).await.unwrap();
    assert_eq!(kit.wait(&theirs.id).await.0, "failed");
    let rec = kit.wq.show(&theirs.id).await.unwrap().unwrap();
    assert!(
        rec.error_message
            .unwrap()
            .contains("no workflow definition"),
        "owner-2 cannot run it"
    );
    pool.stop().await;
}

fn delay_def(ms: u64) -> Value {
    json!({"name": "wait", "nodes": [
        {"id": "s", "type": "start"},
        {"id": "wait", "type": "delay", "config": {"delay_type": "fixed", "duration_ms": ms}},
        {"id": "e", "type": "end", "config": {"output": "waited"}}],
      "edges": [{"id": "1", "source": "s", "target": "wait"}, {"id": "2", "source": "wait", "target": "e"}]})
}

#[tokio::test]
async fn a_long_delay_snoozes_the_job_and_a_cancel_while_snoozed_closes_the_execution() {
    let kit = kit().await;
    let settings = WorkflowSettings {
        inline_delay: Duration::from_millis(50),
        ..Kit::settings()
    };
    let runner = kit.runner(&[], vec![], settings);
    let pool = kit.pool(&runner);
    // 400 ms is past the inline limit: the job goes back to the scheduled set and resumes.
    let (status, row) = kit.run(delay_def(400), json!({})).await;
    assert_eq!(status, "completed", "{row}");
    assert_eq!(row["output_data"]["response"], "waited");
    let kinds: Vec<&str> = row["execution_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["start", "delay", "delay", "end"],
        "ran, snoozed, resumed"
    );

    // A run snoozed for a minute is cancelled in the queue: its handler never runs again, and
    // the reconciler closes the execution.
    let job = kit.job(delay_def(60_000), json!({}));
    kit.wq.enqueue(&job).await.unwrap();
    wait_until(LIMIT, "the run to snooze", || async {
        kit.wq.show(&job.id).await.unwrap().unwrap().status == "pending"
            && kit.k.store.execution(&job.id).await.unwrap().is_some()
    })
    .await;
    kit.wq.cancel(&job.id).await.unwrap();
    assert_eq!(
        kit.k.store.execution(&job.id).await.unwrap().unwrap()["status"],
        "running"
    );
    let reconciler = chatter_worker::reconcile::Reconciler {
        store: std::sync::Arc::new(kit.k.store.clone()),
        queue: std::sync::Arc::new(kit.wq.clone()),
        interval: Duration::from_secs(1),
        idle: Duration::ZERO,
    };
    assert_eq!(reconciler.run_once().await.unwrap(), 1);
    let row = kit.k.store.execution(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (row["status"].as_str(), row["error_message"].as_str()),
        (Some("cancelled"), Some("cancelled"))
    );
    assert_eq!(reconciler.run_once().await.unwrap(), 0, "closed once");
    pool.stop().await;
}

#[tokio::test]
async fn a_second_job_for_a_running_execution_is_refused() {
    let kit = kit().await;
    let runner = kit.runner(&[], vec![], Kit::settings());
    let pool = kit.pool(&runner);
    kit.chat
        .rule("HOLD", Reply::Hang(Duration::from_millis(1500)));
    let args = RunWorkflowArgs {
        definition: Some(library("rag_answer").pipe_rag_to_chat()),
        definition_id: None,
        inputs: json!({"message": "HOLD"}),
        owner: "owner-1".into(),
        execution_id: Some("exec-shared".into()),
    };
    let first = run_job(&args).max_retries(0).build();
    kit.wq.enqueue(&first).await.unwrap();
    wait_until(LIMIT, "the first job's model call", || async {
        !kit.chat.seen().is_empty()
    })
    .await;
    let second = run_job(&args).max_retries(0).build();
    kit.wq.enqueue(&second).await.unwrap();
    assert_eq!(kit.wait(&second.id).await.0, "failed");
    let err = kit
        .wq
        .show(&second.id)
        .await
        .unwrap()
        .unwrap()
        .error_message
        .unwrap();
    assert!(
        err.contains(&format!("is being run by job {}", first.id)),
        "{err}"
    );
    let (status, _) = kit.wait(&first.id).await;
    assert_eq!(status, "completed");
    assert_eq!(kit.chat.seen().len(), 1, "one model call for the execution");
    let row = kit.k.store.execution("exec-shared").await.unwrap().unwrap();
    assert_eq!(
        (row["status"].as_str(), row["job_id"].as_str()),
        (Some("completed"), Some(first.id.as_str()))
    );
    pool.stop().await;
}
