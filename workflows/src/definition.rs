//! Chatter's workflow definitions as they arrive (JSON): `{name, nodes, edges, version, ...}`,
//! nodes in React Flow shape `{id, type, position, data: {label, nodeType, config}}` or flat
//! `{id, type, config}`, edges `{id, source, target, sourceHandle, targetHandle, data:
//! {condition, label}}`. Unknown extra fields are kept out of the way, not refused: Chatter's
//! editor adds its own. `validate` turns a definition into a typed [`crate::Workflow`].
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Definition {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub nodes: Vec<RawNode>,
    #[serde(default)]
    pub edges: Vec<RawEdge>,
    #[serde(default)]
    pub version: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawNode {
    pub id: String,
    /// React Flow's node type, or the kind itself in the flat shape.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub data: Option<NodeData>,
    /// The flat shape's settings.
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub position: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeData {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default, rename = "nodeType")]
    pub node_type: Option<String>,
    #[serde(default)]
    pub config: Option<Value>,
}

impl RawNode {
    /// `data.nodeType` when present (React Flow shape), else `type`.
    pub fn kind(&self) -> Option<&str> {
        self.data
            .as_ref()
            .and_then(|d| d.node_type.as_deref())
            .or(self.kind.as_deref())
    }

    /// `data.config`, else `config`, else `{}`; and the field path it came from.
    pub fn config(&self) -> (Value, &'static str) {
        match (&self.data, &self.config) {
            (
                Some(NodeData {
                    config: Some(c), ..
                }),
                _,
            ) => (c.clone(), "data.config"),
            (_, Some(c)) => (c.clone(), "config"),
            (Some(_), None) => (Value::Object(Default::default()), "data.config"),
            (None, None) => (Value::Object(Default::default()), "config"),
        }
    }

    pub fn label(&self) -> Option<&str> {
        self.data.as_ref().and_then(|d| d.label.as_deref())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawEdge {
    pub id: String,
    pub source: String,
    pub target: String,
    #[serde(default, rename = "sourceHandle")]
    pub source_handle: Option<String>,
    #[serde(default, rename = "targetHandle")]
    pub target_handle: Option<String>,
    #[serde(default)]
    pub data: Option<EdgeData>,
    /// Some producers put the condition on the edge itself.
    #[serde(default)]
    pub condition: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EdgeData {
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

impl RawEdge {
    /// The edge's condition text, if any (blank means none).
    pub fn condition(&self) -> Option<&str> {
        self.data
            .as_ref()
            .and_then(|d| d.condition.as_deref())
            .or(self.condition.as_deref())
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }
}
