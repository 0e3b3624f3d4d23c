//! The HTTP accept loop under every listener: hyper's HTTP/1 connections over a TCP listener,
//! with what `axum::serve` has no knob for. A client gets `header_timeout` to send its request
//! head (slow-header clients are cut off); at most `max_connections` connections are served at
//! once (the next ones wait in the listen backlog, the server keeps serving the ones it has);
//! every response carries `X-Content-Type-Options: nosniff`. Requests go to the router the
//! `watch` channel holds now, so a process serves `/healthz` before its dependencies connect and
//! swaps in the full router once they have. On `shutdown` it stops accepting, lets each
//! connection finish its request and returns when all are closed.
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The server's limits (`[http]` in the config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Time a client has to send a request's line and headers, from the moment the server
    /// starts reading them (a new connection, or the next request on a kept-alive one).
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// From `[http]` (the settings say what; the server owns the type).
    pub fn from_settings(h: &crate::config::HttpSettings) -> Self {
        Self {
            header_timeout: Duration::from_secs_f64(h.header_timeout_secs),
            max_connections: h.max_connections,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serve `app`'s current router on `listener` until `shutdown` trips and every connection ends.
pub async fn serve(
    listener: TcpListener,
    app: watch::Receiver<Router>,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS) as u32;
    let permits = Arc::new(Semaphore::new(max as usize));
    loop {
        // A permit first: past the cap, connections wait in the kernel's backlog (not refused
        // and not accepted only to starve), and are taken as soon as one ends.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        tokio::spawn(connection(
            stream,
            app.clone(),
            limits.header_timeout,
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    // Each connection holds a permit until it ends: all of them back means all closed.
    let _ = permits.acquire_many(max).await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    app: watch::Receiver<Router>,
    header_timeout: Duration,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = app.borrow().clone();
        async move {
            let mut r = match router.oneshot(req.map(Body::new)).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            r.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            Ok::<_, Infallible>(r)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let r = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            // Finish the request in flight (SSE streams end on the same signal), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "http: connection ended with an error");
    }
}
