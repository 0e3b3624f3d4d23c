//! Validation: a [`Definition`] becomes a typed [`Workflow`] or a list of every problem found,
//! each naming the node or edge id and the field. Rules: at most 100 nodes and 200 edges;
//! unique ids; exactly one start (no edge into it); known kinds with their required settings;
//! edges between existing nodes with conditions that parse; every node reachable from the start
//! and an end reachable; only end nodes without outgoing edges; cycles only through loop nodes.
use crate::condition::{self, Condition};
use crate::definition::Definition;
use crate::node::{self, NodeKind};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const MAX_NODES: usize = 100;
pub const MAX_EDGES: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `node "llm_1"`, `edge "e3"` or `workflow`.
    pub at: String,
    /// The field, e.g. `data.config.model`; empty when the problem is the whole thing.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.at, self.message)
        } else {
            write!(f, "{}: {}: {}", self.at, self.field, self.message)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid workflow{}: {}", name.as_deref().map(|n| format!(" {n:?}")).unwrap_or_default(), problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
pub struct Invalid {
    pub name: Option<String>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub label: Option<String>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub id: String,
    pub source: usize,
    pub target: usize,
    pub condition: Option<Condition>,
}

/// A validated workflow: nodes and edges by index, the start's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub name: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub start: usize,
}

impl Workflow {
    pub fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The edges leaving node `i`, in definition order.
    pub fn outgoing(&self, i: usize) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.source == i)
    }
}

/// Parse JSON text and validate it.
pub fn parse_and_validate(json: &str) -> Result<Workflow, Invalid> {
    let def: Definition = serde_json::from_str(json).map_err(|e| Invalid {
        name: None,
        problems: vec![Problem {
            at: "workflow".into(),
            field: String::new(),
            message: format!("not a workflow definition: {e}"),
        }],
    })?;
    validate(&def)
}

pub fn validate(def: &Definition) -> Result<Workflow, Invalid> {
    // An oversized graph is refused on its size alone: checking (and listing) each of its
    // nodes would let one request cost any amount of work and text.
    let mut too_big = Vec::new();
    for (field, n, max) in [
        ("nodes", def.nodes.len(), MAX_NODES),
        ("edges", def.edges.len(), MAX_EDGES),
    ] {
        if n > max {
            too_big.push(Problem {
                at: "workflow".into(),
                field: field.into(),
                message: format!("{n} {field}; at most {max}"),
            });
        }
    }
    if !too_big.is_empty() {
        return Err(Invalid {
            name: Some(def.name.clone()).filter(|n| !n.is_empty()),
            problems: too_big,
        });
    }
    let mut problems = Vec::new();
    let mut problem = |at: String, field: &str, message: String| {
        problems.push(Problem {
            at,
            field: field.to_string(),
            message,
        })
    };

    // Nodes: ids and kinds.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut nodes = Vec::new();
    for raw in &def.nodes {
        let at = format!("node {:?}", raw.id);
        if raw.id.trim().is_empty() {
            problem(at.clone(), "id", "empty".into());
        }
        if index.insert(raw.id.as_str(), nodes.len()).is_some() {
            problem(at.clone(), "id", "used by another node".into());
        }
        let (config, path) = raw.config();
        let kind = match raw.kind() {
            None => {
                problem(at.clone(), "type", "missing: the node's kind".into());
                None
            }
            Some(k) => match node::parse(k, &config) {
                Ok(kind) => Some(kind),
                Err(errs) => {
                    for (field, message) in errs {
                        let field = match field.as_str() {
                            "type" => "type".to_string(),
                            "" => path.to_string(),
                            f => format!("{path}.{f}"),
                        };
                        problem(at.clone(), &field, message);
                    }
                    None
                }
            },
        };
        nodes.push(kind.map(|kind| Node {
            id: raw.id.clone(),
            label: raw.label().map(str::to_string),
            kind,
        }));
    }

    // Edges.
    let mut edges = Vec::new();
    let mut edge_ids: HashMap<&str, ()> = HashMap::new();
    for raw in &def.edges {
        let at = format!("edge {:?}", raw.id);
        if edge_ids.insert(raw.id.as_str(), ()).is_some() {
            problem(at.clone(), "id", "used by another edge".into());
        }
        let end = |id: &str| index.get(id).copied();
        let (source, target) = (end(&raw.source), end(&raw.target));
        if source.is_none() {
            problem(at.clone(), "source", format!("no node {:?}", raw.source));
        }
        if target.is_none() {
            problem(at.clone(), "target", format!("no node {:?}", raw.target));
        }
        let cond = match raw.condition().map(condition::parse) {
            None => None,
            Some(Ok(c)) => {
                for l in c.loops() {
                    let is_loop = end(l)
                        .and_then(|i| nodes[i].as_ref())
                        .is_some_and(|n| matches!(n.kind, NodeKind::Loop(_)));
                    if !is_loop {
                        problem(
                            at.clone(),
                            "data.condition",
                            format!("loop_{l}_continue names no loop node {l:?}"),
                        );
                    }
                }
                Some(c)
            }
            Some(Err(e)) => {
                problem(at.clone(), "data.condition", e.to_string());
                None
            }
        };
        if let (Some(source), Some(target)) = (source, target) {
            edges.push(Edge {
                id: raw.id.clone(),
                source,
                target,
                condition: cond,
            });
        }
    }

    // The graph, over the nodes that parsed.
    let kind_of = |i: usize| nodes[i].as_ref().map(|n| &n.kind);
    let starts: Vec<usize> = (0..nodes.len())
        .filter(|&i| matches!(kind_of(i), Some(NodeKind::Start)))
        .collect();
    match starts.len() {
        1 => {}
        0 => problem("workflow".into(), "nodes", "no start node".into()),
        n => problem(
            "workflow".into(),
            "nodes",
            format!(
                "{n} start nodes ({}); exactly one is allowed",
                starts
                    .iter()
                    .map(|&i| format!("{:?}", def.nodes[i].id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
    for e in &edges {
        if matches!(kind_of(e.target), Some(NodeKind::Start)) {
            problem(
                format!("edge {:?}", e.id),
                "target",
                "an edge into the start node".into(),
            );
        }
        if matches!(kind_of(e.source), Some(NodeKind::End(_))) {
            problem(
                format!("edge {:?}", e.id),
                "source",
                "an edge out of an end node".into(),
            );
        }
    }
    let out = |i: usize| {
        edges
            .iter()
            .filter(move |e| e.source == i)
            .map(|e| e.target)
    };
    for (i, n) in nodes.iter().enumerate() {
        if let Some(n) = n
            && !matches!(n.kind, NodeKind::End(_))
            && out(i).next().is_none()
        {
            problem(
                format!("node {:?}", n.id),
                "",
                "no outgoing edge: only end nodes may end a run".into(),
            );
        }
    }
    if let [start] = starts[..] {
        let mut seen = vec![false; nodes.len()];
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                stack.extend(out(i));
            }
        }
        for (i, n) in nodes.iter().enumerate() {
            if let Some(n) = n
                && !seen[i]
            {
                problem(
                    format!("node {:?}", n.id),
                    "",
                    "not reachable from the start".into(),
                );
            }
        }
        let end_reached =
            (0..nodes.len()).any(|i| seen[i] && matches!(kind_of(i), Some(NodeKind::End(_))));
        if !end_reached {
            problem(
                "workflow".into(),
                "nodes",
                "no end node is reachable from the start".into(),
            );
        }
    }
    if let Some(node) = cycle_without_loop(&nodes, &edges) {
        problem(
            format!("node {:?}", def.nodes[node].id),
            "",
            "on a cycle without a loop node: cycles must pass through a loop node (its \
             max_iterations bounds them)"
                .into(),
        );
    }

    if problems.is_empty() {
        Ok(Workflow {
            name: def.name.clone(),
            nodes: nodes.into_iter().flatten().collect(),
            edges,
            start: starts[0],
        })
    } else {
        Err(Invalid {
            name: Some(def.name.clone()).filter(|n| !n.is_empty()),
            problems,
        })
    }
}

/// A node on a cycle that passes through no loop node, if any (depth-first search over the graph
/// without its loop nodes).
fn cycle_without_loop(nodes: &[Option<Node>], edges: &[Edge]) -> Option<usize> {
    let is_loop = |i: usize| matches!(nodes[i].as_ref().map(|n| &n.kind), Some(NodeKind::Loop(_)));
    // 0 unvisited, 1 on the stack, 2 done
    let mut state = vec![0u8; nodes.len()];
    for root in 0..nodes.len() {
        if state[root] != 0 || is_loop(root) {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = 1;
        while let Some(&mut (i, ref mut next)) = stack.last_mut() {
            let succ: Vec<usize> = edges
                .iter()
                .filter(|e| e.source == i && !is_loop(e.target))
                .map(|e| e.target)
                .collect();
            if let Some(&t) = succ.get(*next) {
                *next += 1;
                match state[t] {
                    0 => {
                        state[t] = 1;
                        stack.push((t, 0));
                    }
                    1 => return Some(t),
                    _ => {}
                }
            } else {
                state[i] = 2;
                stack.pop();
            }
        }
    }
    None
}
