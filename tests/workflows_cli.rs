//! `chatter-worker workflows validate`: the library passes; a bad file fails with exit code 1
//! and every problem named by node id and field.
use std::process::Command;

fn validate(files: &[&str], json: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatter-worker"));
    if json {
        cmd.arg("--json");
    }
    let out = cmd
        .args(["workflows", "validate"])
        .args(files)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn validate_names_the_node_and_field() {
    let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/library");
    let files: Vec<String> = std::fs::read_dir(lib)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    assert!(files.len() >= 4);
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let (code, out) = validate(&refs, false);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches(": valid (").count(), files.len(), "{out}");

    let dir = std::env::temp_dir().join(format!("cw-wf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"name": "bad", "nodes": [{"id": "s", "type": "start"},
            {"id": "ask", "type": "llm", "config": {"prompt": "{{ oops"}},
            {"id": "e", "type": "end"}],
           "edges": [{"id": "e1", "source": "s", "target": "ask"},
                     {"id": "e2", "source": "ask", "target": "e"}]}"#,
    )
    .unwrap();
    let (code, out) = validate(&[bad.to_str().unwrap()], false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("node \"ask\": config.model: required"),
        "{out}"
    );
    assert!(
        out.contains("node \"ask\": config.prompt: template error"),
        "{out}"
    );
    let (code, out) = validate(&[bad.to_str().unwrap()], true);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["valid"], false);
    assert_eq!(v[0]["problems"].as_array().unwrap().len(), 2, "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An invalid inline definition is refused at enqueue: the producer sees the node named, and
/// nothing is sent (the Redis URL here points nowhere).
#[test]
fn enqueue_refuses_an_invalid_definition_naming_the_node() {
    let args = serde_json::json!({
        "owner": "u1",
        "definition": {"name": "x", "nodes": [
            {"id": "s", "type": "start"},
            {"id": "decide", "type": "conditional"},
            {"id": "e", "type": "end"}],
          "edges": [{"id": "1", "source": "s", "target": "decide"},
                    {"id": "2", "source": "decide", "target": "e", "data": {"condition": "tool_calls >> 1"}}]}
    });
    let out = Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
        .args(["--redis-url", "redis://127.0.0.1:1/"])
        .args(["enqueue", "run_workflow", "--args", &args.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("edge \"2\": data.condition"), "{stderr}");
    assert!(!stderr.contains("connect"), "{stderr}");
}
