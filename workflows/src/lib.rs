//! Chatter workflows: definitions parsed and validated into typed graphs (`definition`, `node`,
//! `condition`, `validate`), with prompt templates (`template`). The executor arrives next.
#![forbid(unsafe_code)]
pub mod condition;
pub mod definition;
pub mod node;
pub mod template;
pub mod validate;

pub use definition::Definition;
pub use validate::{Invalid, Problem, Workflow, parse_and_validate, validate};
