//! Chatter workflows: definition parsing, validation and the executor arrive with the workflow issue.
#![forbid(unsafe_code)]
