//! `chatter-worker run`: every configured queue's pool, the rescuer, retention and the HTTP
//! endpoints in one process, until the shutdown token trips (SIGTERM / SIGINT in the binary).
use crate::backend::{Backend, Queue};
use crate::config::Settings;
use crate::handlers::{self, HandlerError};
use crate::http::{self, HttpState, server};
use crate::metrics;
use crate::pool::{self, PoolReport};
use crate::queue::{self, RedisBackend};
use crate::reconcile::Reconciler;
use crate::rescuer::{Rescuer, RescuerConfig};
use crate::retention::{Retention, RetentionConfig};
use crate::sqlite::SqliteBackend;
use chatter_jobs::Registry;
use chatter_jobs::registry::queues;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error(transparent)]
    Handlers(#[from] HandlerError),
    #[error("cannot open the embedded database {path}: {source}")]
    Open {
        path: String,
        source: chatter_jobs::store::StoreError,
    },
}

/// Once the pools have stopped, the time the other loops and the HTTP server get to end.
const STOP_GRACE: Duration = Duration::from_secs(1);

pub async fn run(
    settings: Settings,
    mut registry: Registry,
    shutdown: CancellationToken,
) -> Result<Vec<PoolReport>, RunError> {
    settings.validate(&registry)?;
    // A bad schedule stops the start, naming the schedule and the field.
    let schedules = match settings.schedules_path().filter(|_| settings.scheduler) {
        Some(path) => crate::cron::load_with(&path, &registry, &settings.queue_options().limits)
            .map_err(|e| RunError::Config(crate::config::ConfigError::Invalid(e)))?,
        None => Vec::new(),
    };
    // A tick's idempotency key must outlive its done gate, so no stale read can enqueue twice.
    if let Some(s) = schedules
        .iter()
        .find(|s| settings.idempotency_ttl_secs < (s.spec.grace_secs + 3600) as f64)
    {
        return Err(RunError::Config(crate::config::ConfigError::Invalid(
            format!(
                "idempotency_ttl_secs = {} is shorter than schedule {:?}'s grace_secs + 3600",
                settings.idempotency_ttl_secs, s.spec.name
            ),
        )));
    }
    let handle = metrics::install();
    let listener = tokio::net::TcpListener::bind(&settings.http_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: settings.http_addr.clone(),
            source,
        })?;
    // The API's own listener, when it has one: bound before anything starts, like /metrics'.
    let api_addr = settings
        .api
        .addr
        .clone()
        .or_else(|| std::env::var("CW_API_ADDR").ok())
        .filter(|a| settings.api.enabled && !a.is_empty());
    let api_listener = match &api_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RunError::Listen {
                    addr: addr.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    // Serve from the start, before Redis answers: `/healthz` says the process lives while it
    // waits (a Redis outage at start is not a crash loop); the full routes come once it has.
    let background = CancellationToken::new();
    let _stop_servers = background.clone().drop_guard();
    let limits = server::Limits::from_settings(&settings.http);
    let (app, app_rx) = watch::channel(http::starting_router(handle.clone()));
    let http = tokio::spawn(server::serve(listener, app_rx, limits, background.clone()));
    let api_server = api_listener.map(|listener| {
        tracing::info!(addr = ?api_addr, "api and dashboard on their own address");
        let (tx, rx) = watch::channel(http::starting_router(handle.clone()));
        let server = tokio::spawn(server::serve(listener, rx, limits, background.clone()));
        (tx, server)
    });
    let (backend, store) = match settings.embedded() {
        Some(path) => {
            // One pool on the file for the queue and the store (one process, one writer queue).
            let pool = chatter_jobs::store::sqlite::open(&path)
                .await
                .map_err(|e| RunError::Open {
                    path: path.display().to_string(),
                    source: e,
                })?;
            tracing::info!(file = %path.display(), "embedded: queue and store in one SQLite file (set REDIS_URL and DATABASE_URL for Redis + PostgreSQL)");
            let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::new(pool.clone(), &path));
            let store = handlers::AnyStore::Sqlite(chatter_jobs::store::SqliteStore::new(pool));
            handlers::install_store(&settings, &mut registry, backend.clone(), &store).await?;
            (backend, Some(store))
        }
        None => {
            let Some(redis) =
                RedisBackend::connect_until(settings.redis_url(), &settings.prefix, &shutdown)
                    .await
            else {
                return Ok(Vec::new());
            };
            let backend: Arc<dyn Backend> = Arc::new(redis);
            let store = handlers::install(&settings, &mut registry, backend.clone()).await?;
            (backend, store)
        }
    };
    let names = settings.queue_names(&registry);
    backend.register_queues(&names).await?;
    let queues: Vec<Arc<dyn Queue>> = names
        .iter()
        .map(|n| backend.queue(n, settings.queue_options()))
        .collect();
    for q in &names {
        metrics::register_queue(q);
    }
    tracing::info!(addr = %settings.http_addr, queues = ?names, "chatter-worker running");

    let api = if settings.api.enabled {
        // Its event tail waits for Redis; a shutdown meanwhile ends the start, as above.
        let start = crate::api::ApiState::new(
            &settings,
            registry.clone(),
            backend.clone(),
            store.as_ref().map(|s| s.documents()),
            background.clone(),
        );
        let state = tokio::select! {
            s = start => s?,
            _ = shutdown.cancelled() => return Ok(Vec::new()),
        };
        Some((state, settings.api.max_body()))
    } else {
        None
    };
    // On its own address, or beside /metrics.
    let (api, api_server) = match (api, api_server) {
        (Some((state, max_body)), Some((tx, server))) => {
            let _ = tx.send(crate::api::router(state, max_body));
            (None, Some(server))
        }
        (api, server) => (api, server.map(|(_, s)| s)),
    };
    let _ = app.send(http::router(HttpState {
        backend: backend.clone(),
        queues: Arc::new(queues.clone()),
        handle,
        api,
        store: store.as_ref().map(|s| s.health()),
        ready_timeout: Duration::from_secs_f64(settings.http.ready_timeout_secs),
    }));
    let rescuer = Rescuer {
        config: RescuerConfig {
            interval: Duration::from_secs_f64(settings.rescue_interval_secs),
            ..Default::default()
        },
        queues: queues.clone(),
    };
    let rescuer = tokio::spawn(rescuer.run(background.clone()));
    let retention = Retention {
        config: RetentionConfig {
            interval: Duration::from_secs_f64(settings.retention_interval_secs),
            ..Default::default()
        },
        queues: queues.clone(),
    };
    let retention = tokio::spawn(retention.run(background.clone()));
    let sweep = crate::sweep::Sweep {
        config: crate::sweep::SweepConfig {
            interval: Duration::from_secs_f64(settings.sweep_interval_secs),
            lease: queues
                .iter()
                .map(|q| settings.pool_config(q.name()).lease)
                .max()
                .unwrap_or(crate::sweep::SweepConfig::default().lease),
        },
        queues: queues.clone(),
        gates: backend.gates(),
    };
    let sweep = tokio::spawn(sweep.run(background.clone()));
    let scheduler = (!schedules.is_empty()).then(|| {
        tracing::info!(schedules = schedules.len(), "cron scheduler running");
        let sc = crate::cron::Scheduler {
            schedules,
            backend: backend.clone(),
            options: settings.queue_options(),
            poll: Duration::from_secs_f64(settings.scheduler_poll_secs),
            token: ulid::Ulid::new().to_string(),
        };
        tokio::spawn(sc.run(background.clone()))
    });
    // Workflow executions whose job ended without its handler are closed from the job's state.
    let reconcile = store
        .filter(|_| names.iter().any(|n| n == queues::WORKFLOWS))
        .map(|store| {
            let r = Reconciler {
                store: store.workflows(),
                queue: backend.queue(queues::WORKFLOWS, settings.queue_options()),
                interval: Duration::from_secs_f64(settings.retention_interval_secs),
                idle: Duration::from_secs_f64(settings.workflows.step_timeout_secs.max(1.0) * 2.0),
            };
            tokio::spawn(r.run(background.clone()))
        });

    let pools: Vec<_> = queues
        .into_iter()
        .filter(|q| {
            let kinds: Vec<&str> = registry
                .for_queue(q.name())
                .map(|k| k.name.as_str())
                .collect();
            let runnable = kinds.is_empty() || registry.runnable(q.name());
            if !runnable {
                let hint = if settings.database_url.is_none() {
                    " (the document kinds need DATABASE_URL)"
                } else {
                    ""
                };
                tracing::warn!(
                    queue = q.name(),
                    kinds = ?kinds,
                    "no pool: none of the queue's kinds has a handler in this process{hint}"
                );
            }
            runnable
        })
        .map(|q| {
            let config = settings.pool_config(q.name());
            tokio::spawn(pool::run(
                backend.clone(),
                q,
                registry.clone(),
                config,
                shutdown.clone(),
            ))
        })
        .collect();
    let mut reports = Vec::new();
    for p in pools {
        match p.await {
            Ok(Ok(r)) => reports.push(r),
            Ok(Err(e)) => tracing::error!(error = %e, "pool failed to start"),
            Err(e) => tracing::error!(error = %e, "pool task ended abnormally"),
        }
    }
    // The pools observed the shutdown deadline; the rest stops at once, and a loop caught in
    // a call to an unreachable Redis is not waited for past `STOP_GRACE`.
    background.cancel();
    let end = tokio::time::Instant::now() + STOP_GRACE;
    let _ = tokio::time::timeout_at(end, async {
        let _ = tokio::join!(http, rescuer, retention, sweep);
        if let Some(s) = api_server {
            let _ = s.await;
        }
        for t in [reconcile, scheduler].into_iter().flatten() {
            let _ = t.await;
        }
    })
    .await;
    Ok(reports)
}

/// A token tripped by the first SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested: draining");
        t.cancel();
    });
    token
}
