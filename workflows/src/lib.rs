//! Chatter workflows: definitions parsed and validated into typed graphs (`definition`, `node`,
//! `condition`, `validate`), with prompt templates (`template`), and run node by node from a
//! checkpointed `state` by the `engine`, which reaches the world only through its traits.
#![forbid(unsafe_code)]
pub mod condition;
pub mod definition;
pub mod engine;
pub mod node;
mod nodes;
pub mod state;
pub mod template;
pub mod validate;

pub use definition::Definition;
pub use validate::{Invalid, Problem, Workflow, parse_and_validate, validate};
