//! The library validates; invalid definitions are refused with every problem named by node or
//! edge id and field.
use chatter_workflows::node::NodeKind;
use chatter_workflows::parse_and_validate;
use serde_json::{Value, json};

fn library(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/library/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn the_library_validates() {
    for name in ["plain_chat", "rag_answer", "tool_agent", "document_summary"] {
        let wf = parse_and_validate(&library(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(wf.nodes[wf.start].kind, NodeKind::Start), "{name}");
    }
    let agent = parse_and_validate(&library("tool_agent")).unwrap();
    let llm = agent.index("agent").unwrap();
    assert_eq!(agent.outgoing(llm).count(), 2);
}

/// start -> chat (llm) -> end, flat shape.
fn base() -> Value {
    json!({
        "name": "t",
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "chat", "type": "llm", "config": {"model": "m", "prompt": "{{ input.message }}"}},
            {"id": "end", "type": "end"}
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "chat"},
            {"id": "e2", "source": "chat", "target": "end"}
        ]
    })
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = base();
    f(&mut v);
    v
}

fn push_node(v: &mut Value, node: Value) {
    v["nodes"].as_array_mut().unwrap().push(node);
}

fn push_edge(v: &mut Value, id: &str, source: &str, target: &str, cond: Option<&str>) {
    let mut e = json!({"id": id, "source": source, "target": target});
    if let Some(c) = cond {
        e["data"] = json!({"condition": c});
    }
    v["edges"].as_array_mut().unwrap().push(e);
}

#[test]
fn invalid_definitions_are_refused_naming_the_node() {
    assert!(parse_and_validate(&base().to_string()).is_ok());
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "cycle without a loop",
            with(|v| {
                push_node(v, json!({"id": "check", "type": "conditional"}));
                push_edge(v, "e3", "chat", "check", Some("has_tool_calls"));
                push_edge(v, "e4", "check", "chat", None);
            }),
            &["node \"chat\"", "cycle without a loop node"],
        ),
        (
            "two starts",
            with(|v| {
                push_node(v, json!({"id": "start2", "type": "start"}));
                push_edge(v, "e3", "start2", "chat", None);
            }),
            &["2 start nodes", "\"start2\""],
        ),
        (
            "no start",
            with(|v| {
                v["nodes"][0]["type"] = json!("conditional");
            }),
            &["no start node"],
        ),
        (
            "dangling edge",
            with(|v| push_edge(v, "e9", "chat", "ghost", None)),
            &["edge \"e9\": target: no node \"ghost\""],
        ),
        (
            "unknown kind",
            with(|v| v["nodes"][1]["type"] = json!("telepathy")),
            &["node \"chat\": type: unknown node kind \"telepathy\""],
        ),
        (
            "bad condition syntax",
            with(|v| v["edges"][1]["data"] = json!({"condition": "tool_calls >> 2"})),
            &["edge \"e2\": data.condition:"],
        ),
        (
            "unknown condition",
            with(|v| v["edges"][1]["data"] = json!({"condition": "has_toolcalls"})),
            &["edge \"e2\"", "unknown condition \"has_toolcalls\""],
        ),
        (
            "101 nodes",
            with(|v| {
                for i in 0..98 {
                    push_node(
                        v,
                        json!({"id": format!("v{i}"), "type": "variable",
                        "config": {"operation": "increment", "variable": "n"}}),
                    );
                    push_edge(v, &format!("x{i}"), "chat", &format!("v{i}"), None);
                    push_edge(v, &format!("y{i}"), &format!("v{i}"), "end", None);
                }
            }),
            &["101 nodes; at most 100"],
        ),
        (
            "201 edges",
            with(|v| {
                for i in 0..199 {
                    push_edge(v, &format!("x{i}"), "chat", "end", Some("has_errors"));
                }
            }),
            &["201 edges; at most 200"],
        ),
        (
            "template error",
            with(|v| v["nodes"][1]["config"]["prompt"] = json!("Hi {{ input.message ")),
            &["node \"chat\": config.prompt: template error"],
        ),
        (
            "missing model",
            with(|v| v["nodes"][1]["config"] = json!({"prompt": "hi"})),
            &["node \"chat\": config.model: required"],
        ),
        (
            "no end reachable",
            with(|v| {
                v["edges"] = json!([{"id": "e1", "source": "start", "target": "chat"},
                    {"id": "e2", "source": "chat", "target": "chat2"}]);
                push_node(
                    v,
                    json!({"id": "chat2", "type": "llm", "config": {"model": "m"}}),
                );
                v["nodes"][2]["type"] = json!("loop");
                push_edge(v, "e3", "chat2", "end", None);
                push_edge(v, "e4", "end", "chat", None);
            }),
            &["no end node is reachable"],
        ),
        (
            "unreachable node",
            with(|v| {
                push_node(
                    v,
                    json!({"id": "orphan", "type": "llm", "config": {"model": "m"}}),
                );
                push_edge(v, "e3", "orphan", "end", None);
            }),
            &["node \"orphan\": not reachable from the start"],
        ),
        (
            "dead end",
            with(|v| {
                push_node(v, json!({"id": "stuck", "type": "retrieval"}));
                push_edge(v, "e3", "chat", "stuck", Some("has_errors"));
            }),
            &["node \"stuck\": no outgoing edge"],
        ),
        (
            "duplicate node id",
            with(|v| push_node(v, json!({"id": "chat", "type": "end"}))),
            &["node \"chat\": id: used by another node"],
        ),
        (
            "loop without bound",
            with(|v| {
                push_node(
                    v,
                    json!({"id": "again", "type": "loop", "config": {"max_iterations": 0}}),
                );
                push_edge(v, "e3", "chat", "again", Some("has_errors"));
                push_edge(v, "e4", "again", "chat", None);
            }),
            &["node \"again\": config.max_iterations: 0 is outside 1..=100"],
        ),
        (
            "loop condition naming no loop",
            with(|v| v["edges"][1]["data"] = json!({"condition": "loop_chat_continue"})),
            &["edge \"e2\"", "names no loop node \"chat\""],
        ),
        (
            "variable without a name",
            with(|v| {
                v["nodes"][1] = json!({"id": "chat", "type": "variable",
                    "config": {"operation": "set", "value": 1}});
            }),
            &["node \"chat\": config:", "missing field `variable`"],
        ),
        (
            "bad variable operation",
            with(|v| {
                v["nodes"][1] = json!({"id": "chat", "type": "variable",
                    "config": {"operation": "multiply", "variable": "x"}});
            }),
            &["node \"chat\"", "unknown variant `multiply`"],
        ),
        (
            "temperature out of range",
            with(|v| v["nodes"][1]["config"]["temperature"] = json!(3.5)),
            &["node \"chat\": config.temperature: 3.5 is outside 0..=2"],
        ),
        (
            "tools without tools",
            with(|v| v["nodes"][1] = json!({"id": "chat", "type": "tools", "config": {}})),
            &["node \"chat\": config.available_tools: required"],
        ),
        (
            "random delay without a maximum",
            with(|v| {
                v["nodes"][1] = json!({"id": "chat", "type": "delay",
                    "config": {"delay_type": "random", "duration_ms": 100}});
            }),
            &["node \"chat\": config.max_duration_ms"],
        ),
        (
            "edge into start",
            with(|v| push_edge(v, "back", "chat", "start", Some("has_errors"))),
            &["edge \"back\": target: an edge into the start node"],
        ),
        (
            "node without a kind",
            with(|v| v["nodes"][1] = json!({"id": "chat", "config": {"model": "m"}})),
            &["node \"chat\": type: missing"],
        ),
        (
            "React Flow shape, missing model",
            with(|v| {
                v["nodes"][1] = json!({"id": "chat", "type": "custom", "position": {"x": 1, "y": 2},
                    "data": {"label": "Chat", "nodeType": "model", "config": {"temperature": 0.1}}});
            }),
            &["node \"chat\": data.config.model: required"],
        ),
    ];
    assert!(cases.len() >= 15);
    for (what, def, wants) in cases {
        let err = parse_and_validate(&def.to_string())
            .expect_err(what)
            .to_string();
        println!("{what}: {err}");
        for want in wants {
            assert!(err.contains(want), "{what}: {err:?} lacks {want:?}");
        }
    }
}

#[test]
fn not_json_or_not_a_definition() {
    let e = parse_and_validate("{").unwrap_err().to_string();
    assert!(e.contains("not a workflow definition"), "{e}");
    let e = parse_and_validate("{\"name\": \"x\"}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing field `nodes`"), "{e}");
}

#[test]
fn every_problem_is_listed_at_once() {
    let def = with(|v| {
        v["nodes"][1]["config"] = json!({"temperature": 9});
        push_edge(v, "e9", "chat", "ghost", None);
    });
    let e = parse_and_validate(&def.to_string()).unwrap_err();
    assert_eq!(e.problems.len(), 3, "{e}");
}
