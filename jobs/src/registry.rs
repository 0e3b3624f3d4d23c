//! Which job kinds exist, the queue each runs on, and its handler.
//!
//! Producers use the registry to route and validate a job before it is enqueued (an unknown kind
//! is refused with the list of valid ones); workers use it to dispatch a claimed job to its handler.
use crate::context::JobContext;
use crate::envelope::Job;
use crate::outcome::JobError;
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

/// The fixed queue names shared by producers and workers.
pub mod queues {
    pub const CHUNKING: &str = "chunking";
    pub const EMBEDDING: &str = "embedding";
    pub const WORKFLOWS: &str = "workflows";
    pub const MAINTENANCE: &str = "maintenance";
    pub const ALL: [&str; 4] = [CHUNKING, EMBEDDING, WORKFLOWS, MAINTENANCE];
}

pub type HandlerFuture = BoxFuture<'static, Result<Value, JobError>>;
pub type Handler = Arc<dyn Fn(Job, JobContext) -> HandlerFuture + Send + Sync>;
/// Checks a job's arguments before it is enqueued; the message names the bad field.
pub type ArgsCheck = Arc<dyn Fn(&Job) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct KindSpec {
    pub name: String,
    pub queue: String,
    /// None for a kind this process knows the contract of but cannot run (its handler needs
    /// something this process was not given, e.g. a database).
    pub handler: Option<Handler>,
    pub check: ArgsCheck,
}

impl std::fmt::Debug for KindSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindSpec")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown job kind {kind:?}; valid kinds: {}", valid.join(", "))]
pub struct UnknownKind {
    pub kind: String,
    pub valid: Vec<String>,
}

#[derive(Clone, Default, Debug)]
pub struct Registry {
    kinds: BTreeMap<String, KindSpec>,
}

impl Registry {
    /// Register a kind whose arguments are not checked before enqueue.
    pub fn register<F, Fut>(&mut self, name: &str, queue: &str, handler: F) -> &mut Self
    where
        F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        self.register_checked(name, queue, handler, |_| Ok(()))
    }

    pub fn register_checked<F, Fut, C>(
        &mut self,
        name: &str,
        queue: &str,
        handler: F,
        check: C,
    ) -> &mut Self
    where
        F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
        C: Fn(&Job) -> Result<(), String> + Send + Sync + 'static,
    {
        let handler: Handler = Arc::new(move |job, ctx| Box::pin(handler(job, ctx)));
        self.insert(name, queue, Some(handler), Arc::new(check))
    }

    /// Register a kind's contract (queue and argument check) without a handler: producers can
    /// route and check it; a worker installs the handler when it has what the handler needs.
    pub fn register_contract<C>(&mut self, name: &str, queue: &str, check: C) -> &mut Self
    where
        C: Fn(&Job) -> Result<(), String> + Send + Sync + 'static,
    {
        self.insert(name, queue, None, Arc::new(check))
    }

    fn insert(
        &mut self,
        name: &str,
        queue: &str,
        handler: Option<Handler>,
        check: ArgsCheck,
    ) -> &mut Self {
        self.kinds.insert(
            name.to_string(),
            KindSpec {
                name: name.to_string(),
                queue: queue.to_string(),
                handler,
                check,
            },
        );
        self
    }

    pub fn resolve(&self, kind: &str) -> Result<&KindSpec, UnknownKind> {
        self.kinds.get(kind).ok_or_else(|| UnknownKind {
            kind: kind.to_string(),
            valid: self.kinds.keys().cloned().collect(),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }

    /// Every queue some kind runs on, plus the fixed ones.
    pub fn queues(&self) -> BTreeSet<String> {
        let mut q: BTreeSet<String> = queues::ALL.iter().map(|s| s.to_string()).collect();
        q.extend(self.kinds.values().map(|k| k.queue.clone()));
        q
    }

    /// True when some kind of `queue` has a handler in this process.
    pub fn runnable(&self, queue: &str) -> bool {
        self.for_queue(queue).any(|k| k.handler.is_some())
    }

    /// The kinds that run on one queue.
    pub fn for_queue<'a>(&'a self, queue: &'a str) -> impl Iterator<Item = &'a KindSpec> + 'a {
        self.kinds.values().filter(move |k| k.queue == queue)
    }
}
