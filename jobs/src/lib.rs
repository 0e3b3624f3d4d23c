//! Chatter job contracts and handlers.
//!
//! Receives nothing at run time by itself: it defines the job envelope every producer writes
//! (`envelope`), the closed set of outcomes a handler hands back (`outcome`), the context a handler
//! runs with (`context`), what a handler may send out (`outbox`), the registry mapping each job
//! kind to its queue and handler (`registry`), the kinds' contracts (`kinds`) and the bounds a job
//! must keep at enqueue (`limits`). With the
//! `handlers` feature: the handlers themselves (`chunk`, `embed`, `flow` for workflow runs) and their storage (`store`). The runtime
//! in `chatter-worker` wires these to Redis and apalis.
#![forbid(unsafe_code)]

#[cfg(feature = "handlers")]
pub mod chunk;
pub mod context;
#[cfg(feature = "handlers")]
pub mod embed;
pub mod envelope;
#[cfg(feature = "handlers")]
pub mod flow;
pub mod kinds;
pub mod limits;
#[cfg(feature = "handlers")]
pub mod maintenance;
pub mod outbox;
pub mod outcome;
pub mod registry;
#[cfg(feature = "handlers")]
pub mod store;

/// The workflow definitions and engine (`chatter-workflows`), re-exported for producers.
pub use chatter_workflows as workflows;
pub use context::{JobContext, ProgressUpdate};
pub use envelope::{DecodeError, FORMAT_VERSION, Job, JobBuilder, Priority, Status, Timestamp};
pub use limits::{JobLimits, LimitError, SizeLimits};
pub use outbox::Outbox;
pub use outcome::{ErrorExt, JobError, Outcome};
pub use registry::{KindSpec, Registry};
