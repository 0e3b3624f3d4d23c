//! `workflows validate|run`: check Chatter workflow definitions (every problem, named by node or
//! edge id; exit 1 when any file is invalid), and enqueue a run of one, with `--wait` following
//! it to its end (exit 1 unless it completed).
use super::context::{queue_handle, submit_one};
use crate::cli::{WorkflowRunArgs, WorkflowsAction};
use crate::config::Settings;
use crate::jobs::Registry;
use crate::submit::SubmitError;
use anyhow::{Context, bail};
use std::path::PathBuf;

pub async fn run(
    s: &Settings,
    registry: &Registry,
    action: WorkflowsAction,
    json: bool,
) -> anyhow::Result<()> {
    match action {
        WorkflowsAction::Validate { files } => validate(&files, json),
        WorkflowsAction::Run(a) => workflow_run(s, registry, a, json).await,
    }
}

/// `workflows validate FILES...`.
fn validate(files: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        reports.push(match chatter_jobs::workflows::parse_and_validate(&text) {
            Ok(wf) => serde_json::json!({
                "file": f, "valid": true, "name": wf.name,
                "nodes": wf.nodes.len(), "edges": wf.edges.len(),
            }),
            Err(e) => serde_json::json!({
                "file": f, "valid": false, "problems": e.problems,
            }),
        });
    }
    let invalid = reports.iter().filter(|r| r["valid"] == false).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            let file = r["file"].as_str().unwrap_or_default();
            match r["problems"].as_array() {
                None => {
                    println!("{file}: valid ({} nodes, {} edges)", r["nodes"], r["edges"])
                }
                Some(ps) => {
                    println!("{file}: invalid");
                    for p in ps {
                        let p: chatter_jobs::workflows::Problem =
                            serde_json::from_value(p.clone())?;
                        println!("  {p}");
                    }
                }
            }
        }
    }
    if invalid > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// `workflows run`: enqueue, and with `--wait` follow the job to its end.
async fn workflow_run(
    s: &Settings,
    registry: &Registry,
    a: WorkflowRunArgs,
    json: bool,
) -> anyhow::Result<()> {
    use chatter_jobs::kinds::workflows::{RunWorkflowArgs, run_job};
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let definition: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", a.file.display()))?;
    let inputs: serde_json::Value = serde_json::from_str(&a.input)
        .with_context(|| format!("--input is not JSON: {}", a.input))?;
    let job = run_job(&RunWorkflowArgs {
        definition: Some(definition),
        definition_id: None,
        inputs,
        owner: a.owner.clone(),
        execution_id: None,
    })
    .priority(a.priority)
    .build();
    let spec = registry.resolve(&job.function_name)?;
    let r = match submit_one(s, registry, &job).await {
        Ok(r) => r,
        Err(e) => match e.downcast::<SubmitError>() {
            Ok(SubmitError::Args { message, .. }) => {
                anyhow::bail!("{}: {message}", a.file.display())
            }
            Ok(other) => return Err(other.into()),
            Err(e) => return Err(e),
        },
    };
    let q = queue_handle(s, &spec.queue).await?;
    if !a.wait {
        if json {
            println!(
                "{}",
                serde_json::json!({"id": r.id, "execution_id": r.id, "queue": spec.queue})
            );
        } else {
            println!("{}", r.id);
        }
        return Ok(());
    }
    let until = std::time::Instant::now() + a.wait_timeout;
    let rec = loop {
        let rec = q
            .show(&r.id)
            .await?
            .with_context(|| format!("job {} vanished", r.id))?;
        if matches!(rec.status.as_str(), "completed" | "failed" | "cancelled") {
            break rec;
        }
        if std::time::Instant::now() >= until {
            bail!(
                "job {} still {} after {:?}",
                r.id,
                rec.status,
                a.wait_timeout
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let out = serde_json::json!({
        "id": r.id, "execution_id": r.id, "status": rec.status,
        "result": rec.result, "error": rec.error_message,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        match rec.result.as_ref().and_then(|v| v.get("response")) {
            Some(serde_json::Value::String(t)) => println!("{t}"),
            _ => println!("{}", serde_json::to_string_pretty(&out)?),
        }
    }
    if rec.status != "completed" {
        eprintln!(
            "run {} {}: {}",
            r.id,
            rec.status,
            rec.error_message.unwrap_or_default()
        );
        std::process::exit(1);
    }
    Ok(())
}
