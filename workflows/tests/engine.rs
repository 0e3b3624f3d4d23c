//! The executor against in-memory services: the library workflows run end to end, a run
//! resumes from its checkpoint without repeating a finished model call, cancellation, long
//! delays hand back, error handlers retry, the token budget holds.
use chatter_workflows::engine::{
    ChatRequest, ChatResponse, Checkpoints, Engine, Limits, RunOutcome, Services, StepError,
};
use chatter_workflows::state::{Message, Passage, State, ToolCall};
use chatter_workflows::{Workflow, parse_and_validate};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn library(name: &str) -> Workflow {
    parse_and_validate(
        &std::fs::read_to_string(format!(
            "{}/library/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap()
}

/// Chat answers from a script: each call pops the next answer (a text, or tool calls).
#[derive(Default)]
struct Fake {
    answers: Mutex<Vec<ChatResponse>>,
    chats: Mutex<Vec<ChatRequest>>,
    tools: Mutex<Vec<(String, Value)>>,
    stored: Mutex<Vec<Message>>,
    /// Fail this many chat calls first.
    chat_failures: Mutex<u32>,
    /// Chat hangs until cancelled.
    hang: bool,
}

impl Fake {
    fn answering(answers: Vec<ChatResponse>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().rev().collect()),
            ..Self::default()
        }
    }
}

fn text(t: &str) -> ChatResponse {
    ChatResponse {
        content: t.into(),
        prompt_tokens: 10,
        completion_tokens: 5,
        cost: 0.001,
        ..Default::default()
    }
}

fn calls(names: &[&str]) -> ChatResponse {
    ChatResponse {
        tool_calls: names
            .iter()
            .enumerate()
            .map(|(i, n)| ToolCall {
                id: format!("call_{i}"),
                name: n.to_string(),
                arguments: json!({"city": "Oslo"}).to_string(),
            })
            .collect(),
        prompt_tokens: 10,
        completion_tokens: 5,
        ..Default::default()
    }
}

impl Services for Fake {
    fn chat<'a>(&'a self, req: ChatRequest) -> BoxFuture<'a, Result<ChatResponse, StepError>> {
        Box::pin(async move {
            if self.hang {
                futures::future::pending::<()>().await;
            }
            self.chats.lock().unwrap().push(req);
            let mut f = self.chat_failures.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(StepError::retryable("503 from the provider"));
            }
            Ok(self
                .answers
                .lock()
                .unwrap()
                .pop()
                .unwrap_or_else(|| text("fallback")))
        })
    }

    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        limit: usize,
        _documents: &'a [String],
        _url: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Passage>, StepError>> {
        Box::pin(async move {
            Ok((0..limit.min(2))
                .map(|i| Passage {
                    document_id: "d1".into(),
                    chunk_id: format!("c{i}"),
                    content: format!("passage {i} about {query}"),
                    score: 0.9,
                })
                .collect())
        })
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: Value,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(async move {
            self.tools
                .lock()
                .unwrap()
                .push((name.to_string(), arguments));
            Ok(json!({"temperature_c": 4}))
        })
    }

    fn memory_load<'a>(
        &'a self,
        _key: &'a str,
        window: usize,
    ) -> BoxFuture<'a, Result<Vec<Message>, StepError>> {
        Box::pin(async move {
            Ok(vec![
                Message::new("user", "earlier"),
                Message::new("assistant", "reply"),
            ]
            .into_iter()
            .take(window)
            .collect())
        })
    }

    fn memory_store<'a>(
        &'a self,
        _key: &'a str,
        messages: &'a [Message],
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            self.stored.lock().unwrap().extend_from_slice(messages);
            Ok(())
        })
    }
}

#[derive(Default)]
struct Saved(Mutex<Vec<State>>);

impl Checkpoints for Saved {
    fn save<'a>(&'a self, state: &'a State) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            self.0.lock().unwrap().push(state.clone());
            Ok(())
        })
    }
}

fn limits() -> Limits {
    Limits {
        deadline: Instant::now() + Duration::from_secs(30),
        step_timeout: Duration::from_secs(5),
        token_budget: 100_000,
        inline_delay: Duration::from_millis(50),
        max_steps: 100,
    }
}

async fn run(wf: &Workflow, fake: &Fake, state: &mut State) -> (RunOutcome, Saved) {
    let saved = Saved::default();
    let engine = Engine {
        workflow: wf,
        services: fake,
        checkpoints: &saved,
        limits: limits(),
        cancel: CancellationToken::new(),
    };
    (engine.run(state).await, saved)
}

fn input(message: &str) -> Value {
    json!({"message": message, "conversation_id": "conv-1"})
}

#[tokio::test]
async fn plain_chat_reads_and_stores_memory() {
    let wf = library("plain_chat");
    let fake = Fake::answering(vec![text("Hello!")]);
    let mut state = State::new(input("hi"), wf.start);
    let (outcome, saved) = run(&wf, &fake, &mut state).await;
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(state.response.as_deref(), Some("Hello!"));
    let chats = fake.chats.lock().unwrap();
    let roles: Vec<&str> = chats[0].messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(fake.stored.lock().unwrap().len(), 2);
    assert_eq!(saved.0.lock().unwrap().len(), 5, "a checkpoint per node");
    assert_eq!((state.prompt_tokens, state.completion_tokens), (10, 5));
}

#[tokio::test]
async fn rag_answer_puts_passages_in_the_system_prompt() {
    let wf = library("rag_answer");
    let fake = Fake::answering(vec![text("It is [1].")]);
    let mut state = State::new(input("what is it"), wf.start);
    assert_eq!(run(&wf, &fake, &mut state).await.0, RunOutcome::Completed);
    let system = &fake.chats.lock().unwrap()[0].messages[0].content;
    assert!(
        system.contains("[1] passage 0 about what is it"),
        "{system}"
    );
    assert_eq!(state.retrieved.len(), 2);
}

#[tokio::test]
async fn tool_agent_calls_tools_then_answers() {
    let wf = library("tool_agent");
    let fake = Fake::answering(vec![calls(&["get_weather"]), text("4 degrees in Oslo")]);
    let mut state = State::new(input("weather in Oslo?"), wf.start);
    assert_eq!(run(&wf, &fake, &mut state).await.0, RunOutcome::Completed);
    assert_eq!(state.response.as_deref(), Some("4 degrees in Oslo"));
    assert_eq!(fake.tools.lock().unwrap().len(), 1);
    assert_eq!(state.tool_calls, 1);
    // The second call carries the tool's answer, not the user's message again.
    let second = &fake.chats.lock().unwrap()[1];
    let roles: Vec<&str> = second.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool"]);
}

#[tokio::test]
async fn tool_agent_stops_at_its_loop_bound() {
    let wf = library("tool_agent");
    // The model asks for a tool every time: the loop lets 5 rounds through, then ends.
    let fake = Fake::answering((0..10).map(|_| calls(&["get_weather"])).collect());
    let mut state = State::new(input("loop forever"), wf.start);
    assert_eq!(run(&wf, &fake, &mut state).await.0, RunOutcome::Completed);
    assert_eq!(fake.tools.lock().unwrap().len(), 5);
    assert_eq!(fake.chats.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn document_summary_sets_its_output_variable() {
    let wf = library("document_summary");
    let fake = Fake::answering(vec![text("- one\n- two")]);
    let mut state = State::new(json!({}), wf.start);
    assert_eq!(run(&wf, &fake, &mut state).await.0, RunOutcome::Completed);
    assert_eq!(state.response.as_deref(), Some("- one\n- two"));
    assert_eq!(state.variables["summary"], json!("- one\n- two"));
}

#[tokio::test]
async fn a_resumed_run_repeats_no_finished_model_call() {
    let wf = library("rag_answer");
    let fake = Fake::answering(vec![text("answer")]);
    let mut state = State::new(input("q"), wf.start);
    let (_, saved) = run(&wf, &fake, &mut state).await;
    // The checkpoint taken right after the llm node: a worker dying there resumes from it.
    let after_llm = saved.0.lock().unwrap()[2].clone();
    assert_eq!(wf.nodes[after_llm.next.unwrap()].id, "end");
    let again = Fake::answering(vec![text("must not be asked")]);
    let mut resumed = after_llm;
    assert_eq!(
        run(&wf, &again, &mut resumed).await.0,
        RunOutcome::Completed
    );
    assert_eq!(again.chats.lock().unwrap().len(), 0);
    assert_eq!(resumed.response.as_deref(), Some("answer"));
}

#[tokio::test]
async fn provider_errors_retry_the_job_or_an_error_handler_retries_in_place() {
    let wf = library("rag_answer");
    let fake = Fake::answering(vec![text("ok")]);
    *fake.chat_failures.lock().unwrap() = 1;
    let mut state = State::new(input("q"), wf.start);
    let (outcome, _) = run(&wf, &fake, &mut state).await;
    assert!(
        matches!(outcome, RunOutcome::Retry(ref m) if m.contains("503")),
        "{outcome:?}"
    );
    // The retried job resumes at the model node.
    assert_eq!(wf.nodes[state.next.unwrap()].id, "answer");
    assert_eq!(run(&wf, &fake, &mut state).await.0, RunOutcome::Completed);

    let def = json!({"name": "h", "nodes": [
        {"id": "s", "type": "start"},
        {"id": "ask", "type": "llm", "config": {"model": "m"}},
        {"id": "oops", "type": "error_handler", "config": {"retry_count": 2, "fallback_action": "continue"}},
        {"id": "e", "type": "end", "config": {"output": "{% if errors %}{{ errors | length }} errors{% else %}{{ last_response }}{% endif %}"}}],
      "edges": [{"id": "1", "source": "s", "target": "ask"}, {"id": "2", "source": "ask", "target": "e"},
        {"id": "3", "source": "ask", "target": "oops"}, {"id": "4", "source": "oops", "target": "e"}]});
    let wf = parse_and_validate(&def.to_string()).unwrap();
    let fake = Fake::answering(vec![text("fine")]);
    *fake.chat_failures.lock().unwrap() = 2;
    let mut state = State::new(input("q"), wf.start);
    assert_eq!(run(&wf, &fake, &mut state).await.0, RunOutcome::Completed);
    assert_eq!(state.response.as_deref(), Some("fine"));
    // Each try started from the state as it was: the prompt went to the model once per try,
    // and the state holds it once.
    for req in fake.chats.lock().unwrap().iter() {
        assert_eq!(req.messages.iter().filter(|m| m.role == "user").count(), 1);
    }
    assert_eq!(
        state.messages.iter().filter(|m| m.role == "user").count(),
        1
    );
    *fake.chat_failures.lock().unwrap() = 5;
    let mut state = State::new(input("q"), wf.start);
    assert_eq!(run(&wf, &fake, &mut state).await.0, RunOutcome::Completed);
    assert_eq!(state.response.as_deref(), Some("1 errors"));
}

#[tokio::test]
async fn cancellation_stops_a_hanging_model_call() {
    let wf = library("rag_answer");
    let fake = Fake {
        hang: true,
        ..Fake::default()
    };
    let saved = Saved::default();
    let cancel = CancellationToken::new();
    let engine = Engine {
        workflow: &wf,
        services: &fake,
        checkpoints: &saved,
        limits: limits(),
        cancel: cancel.clone(),
    };
    let mut state = State::new(input("q"), wf.start);
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.cancel();
    });
    let started = Instant::now();
    assert_eq!(engine.run(&mut state).await, RunOutcome::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_long_delay_hands_the_slot_back_and_resumes_after_it() {
    let def = json!({"name": "d", "nodes": [
        {"id": "s", "type": "start"},
        {"id": "wait", "type": "delay", "config": {"delay_type": "fixed", "duration_ms": 150}},
        {"id": "e", "type": "end", "config": {"output": "done"}}],
      "edges": [{"id": "1", "source": "s", "target": "wait"}, {"id": "2", "source": "wait", "target": "e"}]});
    let wf = parse_and_validate(&def.to_string()).unwrap();
    let fake = Fake::default();
    let mut state = State::new(json!({}), wf.start);
    let (outcome, _) = run(&wf, &fake, &mut state).await;
    assert!(
        matches!(outcome, RunOutcome::Wait(d) if d > Duration::from_millis(50)),
        "{outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(160)).await;
    assert_eq!(run(&wf, &fake, &mut state).await.0, RunOutcome::Completed);
    assert_eq!(state.response.as_deref(), Some("done"));
}

#[tokio::test]
async fn the_token_budget_ends_the_run() {
    let wf = library("tool_agent");
    let fake = Fake::answering((0..10).map(|_| calls(&["get_weather"])).collect());
    let saved = Saved::default();
    let engine = Engine {
        workflow: &wf,
        services: &fake,
        checkpoints: &saved,
        limits: Limits {
            token_budget: 30,
            ..limits()
        },
        cancel: CancellationToken::new(),
    };
    let mut state = State::new(input("q"), wf.start);
    let outcome = engine.run(&mut state).await;
    assert!(
        matches!(outcome, RunOutcome::Failed(ref m) if m.contains("token budget")),
        "{outcome:?}"
    );
    assert_eq!(fake.chats.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_crash_between_two_tool_calls_repeats_neither_finished_call() {
    let wf = library("tool_agent");
    let fake = Fake::answering(vec![
        calls(&["get_weather", "get_weather", "get_weather"]),
        text("done"),
    ]);
    let mut state = State::new(input("three cities"), wf.start);
    let (outcome, saved) = run(&wf, &fake, &mut state).await;
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(fake.tools.lock().unwrap().len(), 3);
    // A checkpoint was taken after the first call, with two calls still to make.
    let mid = saved
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.pending_tool_calls.len() == 2)
        .cloned()
        .expect("a checkpoint between tool calls");
    let again = Fake::answering(vec![text("done again")]);
    let mut resumed = mid;
    assert_eq!(
        run(&wf, &again, &mut resumed).await.0,
        RunOutcome::Completed
    );
    assert_eq!(
        again.tools.lock().unwrap().len(),
        2,
        "only the unfinished calls"
    );
    assert_eq!(resumed.tool_calls, 3);
}

#[tokio::test]
async fn a_run_stops_at_the_step_limit() {
    let wf = library("tool_agent");
    let fake = Fake::answering((0..10).map(|_| calls(&["get_weather"])).collect());
    let saved = Saved::default();
    let engine = Engine {
        workflow: &wf,
        services: &fake,
        checkpoints: &saved,
        limits: Limits {
            max_steps: 6,
            ..limits()
        },
        cancel: CancellationToken::new(),
    };
    let mut state = State::new(input("loop"), wf.start);
    match engine.run(&mut state).await {
        RunOutcome::Failed(m) => assert!(m.contains("recursion limit: 6 steps"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(state.step, 6);
}

#[tokio::test]
async fn a_hanging_node_hits_the_step_timeout_or_the_execution_timeout() {
    let wf = library("rag_answer");
    let fake = Fake {
        hang: true,
        ..Fake::default()
    };
    let saved = Saved::default();
    let run = |limits: Limits| {
        let (wf, fake, saved) = (&wf, &fake, &saved);
        async move {
            let engine = Engine {
                workflow: wf,
                services: fake,
                checkpoints: saved,
                limits,
                cancel: CancellationToken::new(),
            };
            let mut state = State::new(input("q"), wf.start);
            engine.run(&mut state).await
        }
    };
    // The step's own limit: retryable (the job runs again from the checkpoint).
    let out = run(Limits {
        step_timeout: Duration::from_millis(50),
        ..limits()
    })
    .await;
    assert!(
        matches!(&out, RunOutcome::Retry(m) if m.contains("step timed out after 50ms")),
        "{out:?}"
    );
    // The execution's time runs out inside the node: the run fails, not retried.
    let out = run(Limits {
        deadline: Instant::now() + Duration::from_millis(80),
        ..limits()
    })
    .await;
    assert!(
        matches!(&out, RunOutcome::Failed(m) if m.contains("execution timeout") && m.contains("\"answer\"")),
        "{out:?}"
    );
}
