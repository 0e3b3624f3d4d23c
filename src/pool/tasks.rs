//! apalis meets the pool here, and only here.
//!
//! [`ClaimedTasks`] implements apalis-core's `Backend`: it yields tasks the pool's fetcher claimed
//! and never returns an error (a Redis outage or a bad payload must not stop an apalis worker).
//! [`OutcomeLayer`] is the backend's middleware: it enforces the job's timeout, records the start,
//! and maps whatever the handler stack returned (an `Outcome`, a panic, a timeout) to the queue.
use crate::metrics;
use crate::pool::PoolConfig;
use crate::pool::shared::{Claim, Shared};
use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use chatter_jobs::{Job, Outcome};
use futures::future::BoxFuture;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tower::{Layer, Service};

pub struct ClaimedTasks {
    pub(crate) rx: mpsc::Receiver<Task<Job>>,
    pub(crate) shared: Arc<Shared>,
}

impl Backend for ClaimedTasks {
    type Task = Task<Job>;
    type Error = Infallible;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Task<Job>, Infallible>>> {
        // Once the pool stops, claimed-but-unstarted tasks stay buffered and are handed back.
        if self.shared.stopping.is_cancelled() {
            return Poll::Ready(None);
        }
        self.rx.poll_recv(cx).map(|t| t.map(Ok))
    }

    fn poll_close(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for ClaimedTasks {
    type Args = Job;
    type Id = ulid::Ulid;
    type Kind = Ephemeral;
    type Config = PoolConfig;
    type Layer = OutcomeLayer;

    fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> OutcomeLayer {
        OutcomeLayer {
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct OutcomeLayer {
    shared: Arc<Shared>,
}

impl<S> Layer<S> for OutcomeLayer {
    type Service = OutcomeService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        OutcomeService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct OutcomeService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Task<Job>> for OutcomeService<S>
where
    S: Service<Task<Job>, Response = Outcome>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<(), BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Job>) -> Self::Future {
        let shared = self.shared.clone();
        let Some(claim) = task.ctx().data().get::<Claim>().cloned() else {
            // Every task this backend yields carries its claim; nothing else reaches this layer.
            return Box::pin(async { Ok(()) });
        };
        let job = task.args.clone();
        let limit = Duration::from_secs(job.timeout).min(shared.config.timeout);
        let waited = crate::backend::now_ms().saturating_sub(claim.due_ms);
        metrics::record_started(shared.queue.name(), Duration::from_millis(waited));
        let fut = self.inner.call(task);
        Box::pin(async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(limit, fut).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => Outcome::Retry(format!("handler failed: {}", e.into())),
                Err(_) => Outcome::Retry(format!("timed out after {} s", limit.as_secs_f64())),
            };
            shared.complete(&claim, &job, outcome, started.elapsed());
            Ok(())
        })
    }
}

/// The innermost service: runs the registered handler of the job's kind.
#[derive(Clone)]
pub struct Dispatch {
    pub(crate) shared: Arc<Shared>,
}

impl Service<Task<Job>> for Dispatch {
    type Response = Outcome;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Outcome, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<Job>) -> Self::Future {
        let claim = task.ctx().data().get::<Claim>().cloned();
        let shared = self.shared.clone();
        let job = task.args;
        Box::pin(async move {
            let Some(claim) = claim else {
                return Ok(Outcome::Fail("task carries no claim".into()));
            };
            let handler = match shared.registry.resolve(&job.function_name) {
                Ok(spec) => match &spec.handler {
                    Some(h) => h.clone(),
                    // Another worker of this queue may be able to run it: retry, don't kill it.
                    None => {
                        return Ok(Outcome::Retry(format!(
                            "worker {} has no handler for {:?} (it needs a database)",
                            shared.worker, job.function_name
                        )));
                    }
                },
                Err(e) => return Ok(Outcome::Fail(e.to_string())),
            };
            let ctx = shared.context_for(&claim);
            Ok(handler(job, ctx).await.into())
        })
    }
}
