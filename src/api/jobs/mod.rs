//! `/api/v1/jobs`: Chatter's job routes (create, list, show, cancel, stats, cleanup) plus retry,
//! batch and per-queue stats, and the document and workflow conveniences over their job kinds.
//!
//! By role: `view` (the request and response shapes), `create` (the routes that enqueue, through
//! `submit`, the one submit path), `list` (listing, filters, sort), `actions` (one job: show,
//! cancel, retry; and cleanup), `stats` (overview and per-queue depth).
pub mod actions;
pub mod create;
pub mod list;
pub mod stats;
pub(crate) mod submit;
pub mod view;

pub use actions::*;
pub use create::*;
pub use list::*;
pub use stats::*;
pub use view::*;
