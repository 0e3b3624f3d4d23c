//! The workflow job contract: `run_workflow {definition | definition_id, inputs, owner,
//! execution_id?}` on queue `workflows`. A definition sent inline is validated before enqueue,
//! so an invalid one is refused to the producer with every problem named by node or edge id
//! and never reaches a worker. The handler arrives with the executor's wiring.
use crate::{Job, JobBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const RUN_WORKFLOW: &str = "run_workflow";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunWorkflowArgs {
    /// A Chatter workflow definition, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Value>,
    /// Or the id of a stored definition (`workflow_definitions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_id: Option<String>,
    /// The run's inputs (`message`, `conversation_id`, anything templates read).
    #[serde(default)]
    pub inputs: Value,
    /// The Chatter user the run acts for (its documents, its events).
    pub owner: String,
    /// The `workflow_executions` row to fill; default: one made for the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
}

pub fn check_run(job: &Job) -> Result<(), String> {
    let a: RunWorkflowArgs = job.kwargs_as()?;
    if a.owner.trim().is_empty() {
        return Err("`owner` is empty".into());
    }
    if a.owner.len() > 64 {
        return Err(format!("`owner` is {} bytes; at most 64", a.owner.len()));
    }
    if !(a.inputs.is_object() || a.inputs.is_null()) {
        return Err("`inputs` must be a JSON object".into());
    }
    if let Some(id) = &a.execution_id
        && (id.is_empty() || id.len() > 100)
    {
        return Err(format!("`execution_id` {id:?} must be 1..=100 characters"));
    }
    match (&a.definition, &a.definition_id) {
        (Some(_), Some(_)) => Err("give `definition` or `definition_id`, not both".into()),
        (None, None) => Err("`definition` or `definition_id` is required".into()),
        (None, Some(id)) if id.trim().is_empty() => Err("`definition_id` is empty".into()),
        (None, Some(_)) => Ok(()),
        (Some(def), None) => {
            let def: chatter_workflows::Definition = serde_json::from_value(def.clone())
                .map_err(|e| format!("`definition` is not a workflow definition: {e}"))?;
            chatter_workflows::validate(&def)
                .map(|_| ())
                .map_err(|e| format!("`definition`: {e}"))
        }
    }
}

/// A `run_workflow` job.
pub fn run_job(args: &RunWorkflowArgs) -> JobBuilder {
    let kwargs = match serde_json::to_value(args) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    JobBuilder::new(RUN_WORKFLOW, crate::registry::queues::WORKFLOWS).kwargs(kwargs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(v: Value) -> Job {
        JobBuilder::new(RUN_WORKFLOW, "workflows")
            .kwargs(v.as_object().unwrap().clone())
            .build()
    }

    #[test]
    fn an_invalid_definition_is_refused_naming_the_node() {
        let def = json!({"name": "x", "nodes": [
            {"id": "s", "type": "start"}, {"id": "ask", "type": "llm", "config": {}},
            {"id": "e", "type": "end"}],
            "edges": [{"id": "1", "source": "s", "target": "ask"}, {"id": "2", "source": "ask", "target": "e"}]});
        let e = check_run(&job(json!({"definition": def, "owner": "u1"}))).unwrap_err();
        assert!(e.contains("node \"ask\": config.model: required"), "{e}");
        let mut good = def.clone();
        good["nodes"][1]["config"] = json!({"model": "m"});
        check_run(&job(
            json!({"definition": good, "owner": "u1", "inputs": {"message": "hi"}}),
        ))
        .unwrap();
        let e = check_run(&job(json!({"owner": "u1"}))).unwrap_err();
        assert!(e.contains("required"), "{e}");
        let e = check_run(&job(json!({"definition_id": "d", "owner": ""}))).unwrap_err();
        assert!(e.contains("owner"), "{e}");
        let e = check_run(&job(
            json!({"definition_id": "d", "owner": "u", "inputs": [1]}),
        ))
        .unwrap_err();
        assert!(e.contains("inputs"), "{e}");
    }
}
