//! The workflows role: definitions, a fenced run, memory and the reconciler's calls, on
//! SQLite and as PostgreSQL.
use crate::kit::*;
use chatter_jobs::store::WorkflowStore;
use chatter_jobs::store::workflows::{Begun, Ending, NewExecution};
use chatter_jobs::workflows::state::{LogEntry, Message, State};
use serde_json::{Value, json};

fn execution<'a>(
    id: &'a str,
    owner: &'a str,
    job: &'a str,
    fence: i64,
    io: &'a Value,
) -> NewExecution<'a> {
    NewExecution {
        id,
        definition_id: None,
        owner_id: owner,
        workflow_type: "custom",
        config: io,
        inputs: io,
        job_id: job,
        fence,
    }
}

fn begun(b: Begun) -> Value {
    match b {
        Begun::Running { checkpoint } => json!(["running", checkpoint.map(|c| c.step)]),
        Begun::Ended {
            status,
            output,
            error,
        } => json!(["ended", status, output, error]),
        Begun::Refused(why) => json!(["refused", why]),
    }
}

/// The execution's JSON with what differs between runs (its time) reduced to its presence.
async fn shown(s: &dyn WorkflowStore, id: &str) -> Value {
    let mut e = s.execution(id).await.unwrap().unwrap();
    e["execution_time_ms"] = json!(e["execution_time_ms"].as_i64().map(|ms| ms >= 0));
    e
}

/// Definitions, a run's fenced life, memory and the reconciler's calls; a transcript.
async fn workflow_life(s: &dyn WorkflowStore, x: &str) -> Vec<Value> {
    let mut t = Vec::new();
    let def =
        json!({"name": "wf", "nodes": [{"id": "start", "type": "start"}], "edges": [], "extra": 1});
    let def_id = s.put_workflow_definition("alice", &def).await.unwrap();
    t.push(json!(
        s.workflow_definition(&def_id, "alice").await.unwrap()
    ));
    t.push(json!(s.workflow_definition(&def_id, "bob").await.unwrap()));

    let io = json!({"question": "why?"});
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j1", 1, &io))
            .await
            .unwrap(),
    ));
    t.push(shown(s, x).await);
    let mut state = State::new(io.clone(), 0);
    state.step = 1;
    state.prompt_tokens = 10;
    state.completion_tokens = 5;
    state.cost = 0.25;
    state.log.push(LogEntry {
        step: 1,
        node: "start".into(),
        kind: "start".into(),
        ms: 3,
        error: None,
    });
    t.push(json!([
        "save",
        s.save_step(x, "j1", 1, &state).await.unwrap()
    ]));
    t.push(json!([
        "save stale fence",
        s.save_step(x, "j1", 0, &state).await.unwrap()
    ]));
    t.push(json!([
        "save other job",
        s.save_step(x, "j2", 1, &state).await.unwrap()
    ]));
    // The same job claimed again resumes from the checkpoint; others are refused.
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j1", 2, &io))
            .await
            .unwrap(),
    ));
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j2", 3, &io))
            .await
            .unwrap(),
    ));
    t.push(begun(
        s.begin_execution(&execution(x, "bob", "j1", 4, &io))
            .await
            .unwrap(),
    ));
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j1", 1, &io))
            .await
            .unwrap(),
    ));
    let output = json!({"answer": 42});
    let end = Ending {
        status: "completed",
        output: Some(&output),
        error: None,
        state: &state,
    };
    t.push(json!([
        "end old claim",
        s.end_execution(x, "j1", 1, &end).await.unwrap()
    ]));
    t.push(json!([
        "end",
        s.end_execution(x, "j1", 2, &end).await.unwrap()
    ]));
    t.push(shown(s, x).await);
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j1", 5, &io))
            .await
            .unwrap(),
    ));

    // Memory: a window of the latest, oldest first, per owner and key.
    let msgs: Vec<Message> = (0..5)
        .map(|i| {
            Message::new(
                if i % 2 == 0 { "user" } else { "assistant" },
                format!("m{i}"),
            )
        })
        .collect();
    s.memory_store("alice", "k", &msgs).await.unwrap();
    s.memory_store("alice", "k", &[]).await.unwrap();
    s.memory_store("alice", "other", &msgs[..1]).await.unwrap();
    let window = |m: Vec<Message>| {
        json!(
            m.iter()
                .map(|m| format!("{}:{}", m.role, m.content))
                .collect::<Vec<_>>()
        )
    };
    t.push(window(s.memory_load("alice", "k", 3).await.unwrap()));
    t.push(window(s.memory_load("alice", "k", 10).await.unwrap()));
    t.push(window(s.memory_load("bob", "k", 10).await.unwrap()));

    // The reconciler: idle open executions, closed under their job only.
    let y = format!("{x}-idle");
    s.begin_execution(&execution(&y, "alice", "j9", 1, &io))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let idle = s.idle_executions(0.001, 10).await.unwrap();
    t.push(json!(["idle", idle == [(y.clone(), "j9".to_string())]]));
    t.push(json!([
        "idle an hour",
        s.idle_executions(3600.0, 10).await.unwrap().len()
    ]));
    t.push(json!([
        "close other job",
        s.close_execution(&y, "j8", "cancelled", "gone")
            .await
            .unwrap()
    ]));
    t.push(json!([
        "close",
        s.close_execution(&y, "j9", "cancelled", "job cancelled")
            .await
            .unwrap()
    ]));
    t.push(json!([
        "close again",
        s.close_execution(&y, "j9", "cancelled", "again")
            .await
            .unwrap()
    ]));
    t.push(shown(s, &y).await);
    t.push(json!(s.execution("nope").await.unwrap()));
    t
}

/// Ids differ between stores: the transcript with this run's ids replaced by labels.
fn relabel(mut t: Vec<Value>, x: &str) -> Vec<Value> {
    for v in &mut t {
        let s = v
            .to_string()
            .replace(&format!("{x}-idle"), "Y")
            .replace(x, "X");
        *v = serde_json::from_str(&s).unwrap();
    }
    t
}

#[tokio::test]
async fn workflows_definitions_runs_memory_and_reconciling() {
    let k = kit().await;
    let x = ulid::Ulid::new().to_string();
    let t = relabel(workflow_life(&k.store, &x).await, &x);
    let running = json!({
        "id": "X", "definition_id": null, "owner_id": "alice", "workflow_type": "custom",
        "status": "running", "input_data": {"question": "why?"}, "output_data": null,
        "error_message": null, "execution_log": [], "tokens_used": 0, "cost": 0.0,
        "execution_time_ms": null, "job_id": "j1", "started": true, "completed": false,
    });
    let completed = json!({
        "id": "X", "definition_id": null, "owner_id": "alice", "workflow_type": "custom",
        "status": "completed", "input_data": {"question": "why?"}, "output_data": {"answer": 42},
        "error_message": null, "execution_log": [{"step": 1, "node": "start", "kind": "start", "ms": 3}],
        "tokens_used": 15, "cost": 0.25, "execution_time_ms": true, "job_id": "j1",
        "started": true, "completed": true,
    });
    let want = [
        json!({"name": "wf", "nodes": [{"id": "start", "type": "start"}], "edges": [], "version": 1}),
        json!(null),
        json!(["running", null]),
        running,
        json!(["save", true]),
        json!(["save stale fence", false]),
        json!(["save other job", false]),
        json!(["running", 1]),
        json!(["refused", "execution X is being run by job j1"]),
        json!(["refused", "execution X belongs to another owner"]),
        json!(["refused", "execution X is run by a newer claim (2 > 1)"]),
        json!(["end old claim", false]),
        json!(["end", true]),
        completed,
        json!(["ended", "completed", {"answer": 42}, null]),
        json!(["user:m2", "assistant:m3", "user:m4"]),
        json!([
            "user:m0",
            "assistant:m1",
            "user:m2",
            "assistant:m3",
            "user:m4"
        ]),
        json!([]),
        json!(["idle", true]),
        json!(["idle an hour", 0]),
        json!(["close other job", false]),
        json!(["close", true]),
        json!(["close again", false]),
    ];
    assert_eq!(t[..want.len()], want);
    let closed = &t[want.len()];
    assert_eq!(
        (
            &closed["status"],
            &closed["error_message"],
            &closed["completed"]
        ),
        (&json!("cancelled"), &json!("job cancelled"), &json!(true))
    );
    assert_eq!(t[want.len() + 1], json!(null));
    assert_eq!(t.len(), want.len() + 2);
}

#[tokio::test]
async fn workflows_as_postgres() {
    let k = kit().await;
    let (pg, db, schema) = pg().await;
    let x = ulid::Ulid::new().to_string();
    let ours = relabel(workflow_life(&k.store, &x).await, &x);
    let theirs = relabel(workflow_life(&pg, &x).await, &x);
    assert_eq!(ours, theirs);
    drop_schema(&db, &schema).await;
}
