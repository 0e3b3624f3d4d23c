//! `GET /api/v1/events/stream`: job and document events over SSE, each to its owner and to
//! admins only. One tail of the event log per process feeds every connection; a reconnect with
//! `Last-Event-ID` first replays what the log still holds after that id, then goes live, and a
//! connection too slow for the live feed catches up from the log instead of losing events.
use super::ApiState;
use super::auth::Caller;
use super::problem::{ApiResult, Problem};
use crate::backend::{Backend, EventLog};
use crate::events::{Logged, StreamId};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events read from the log at once (replay and catch-up).
const PAGE: usize = 1000;

/// The process's one tail of the event log, fanned out to every SSE connection.
pub struct Hub {
    tx: broadcast::Sender<Arc<Logged>>,
    log: Arc<dyn EventLog>,
}

impl Hub {
    /// Start tailing from the log's current end. The blocking reads go through a detached handle
    /// (connections of their own), opened here first; when `stop` trips before the backend
    /// answers, nothing is tailed (the process is stopping).
    pub async fn start(backend: Arc<dyn Backend>, stop: CancellationToken) -> Arc<Self> {
        let (tx, _) = broadcast::channel(4096);
        let log = backend.event_log();
        let hub = Arc::new(Self {
            tx: tx.clone(),
            log: log.clone(),
        });
        if let Some(detached) = backend.detached(&stop).await {
            tokio::spawn(tail(log, detached.event_log(), tx, stop));
        }
        hub
    }
}

async fn tail(
    log: Arc<dyn EventLog>,
    blocking: Arc<dyn EventLog>,
    tx: broadcast::Sender<Arc<Logged>>,
    stop: CancellationToken,
) {
    let mut last = None;
    loop {
        let step = async {
            let after = match last {
                Some(l) => l,
                None => log.last_id().await?,
            };
            last = Some(after);
            let got = blocking.read_after(after, 2000, PAGE).await?;
            for l in got {
                last = Some(l.id);
                // No receivers is fine: nobody is listening right now.
                let _ = tx.send(Arc::new(l));
            }
            Ok::<_, crate::backend::QueueError>(())
        };
        tokio::select! {
            r = step => if let Err(e) = r {
                tracing::warn!(error = %e, "event log tail failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => return,
                }
            },
            _ = stop.cancelled() => return,
        }
    }
}

fn visible(caller: &Caller, l: &Logged) -> bool {
    let k = &l.event.kind;
    (k.starts_with("job.") || k.starts_with("document."))
        && caller.may_see(l.event.owner.as_deref())
}

fn frame(l: &Logged) -> SseEvent {
    SseEvent::default()
        .id(l.id.to_string())
        .event(l.event.kind.clone())
        .data(l.event.data.to_string())
}

struct Conn {
    hub: Arc<Hub>,
    rx: broadcast::Receiver<Arc<Logged>>,
    caller: Caller,
    /// Process shutdown: the stream ends (the client reconnects elsewhere with Last-Event-ID).
    stop: CancellationToken,
    /// The newest id this connection has passed (sent or filtered out).
    last: StreamId,
    queue: VecDeque<Arc<Logged>>,
}

impl Conn {
    /// Read the log after `last` until it is drained into the queue.
    async fn catch_up(&mut self) -> crate::backend::Result<()> {
        loop {
            let page = self.hub.log.range_after(self.last, PAGE).await?;
            let n = page.len();
            for l in page {
                self.last = l.id;
                if visible(&self.caller, &l) {
                    self.queue.push_back(Arc::new(l));
                }
            }
            if n < PAGE {
                return Ok(());
            }
        }
    }

    /// The next event for this caller; None ends the stream: at shutdown, when the caller's
    /// token expires, or when events could not be read back (the client then resumes with
    /// `Last-Event-ID` instead of silently missing them).
    async fn next(&mut self) -> Option<Arc<Logged>> {
        let expiry = self.caller.expires_at.map(|exp| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            tokio::time::Instant::now() + Duration::from_secs(exp.saturating_sub(now))
        });
        loop {
            if let Some(l) = self.queue.pop_front() {
                return Some(l);
            }
            let received = tokio::select! {
                r = self.rx.recv() => r,
                _ = self.stop.cancelled() => return None,
                _ = async { tokio::time::sleep_until(expiry?).await; Some(()) }, if expiry.is_some() => return None,
            };
            match received {
                Ok(l) if l.id > self.last => {
                    self.last = l.id;
                    if visible(&self.caller, &l) {
                        return Some(l);
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, "sse catch-up failed; ending the stream");
                        return None;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Job and document events for the caller (every event for an admin), as server-sent events.
/// Frames: `id: <event id>`, `event: <type>`, `data: <json>`; `Last-Event-ID` resumes.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events",
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (`<ms>-<seq>`)")),
    responses(
        (status = 200, description = "An endless stream of events", content_type = "text/event-stream", body = String),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn stream(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let caller = s.caller(&headers)?;
    let last = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<StreamId>().ok())
                .ok_or_else(|| Problem::field("Last-Event-ID", "not an event id (<ms>-<seq>)"))
        })
        .transpose()?;
    let hub = s.hub.clone();
    // Subscribe first, so nothing falls between the replay and the live feed.
    let rx = hub.tx.subscribe();
    let mut c = Conn {
        hub: hub.clone(),
        rx,
        caller,
        stop: s.stop.clone(),
        last: StreamId::default(),
        queue: VecDeque::new(),
    };
    let mut gap = None;
    match last {
        Some(id) => {
            c.last = id;
            // Events after `id` already trimmed from the log: say so before the replay.
            if hub.log.trimmed_after(id).await? {
                gap = Some(id);
            }
            c.catch_up().await?;
        }
        None => {
            c.last = hub.log.last_id().await?;
        }
    }
    // `events.gap`: the log no longer holds every event after the client's Last-Event-ID (it
    // keeps the newest `event_log_len`); the client should reload the state it tracks.
    let first = gap.map(|id| {
        Ok(SseEvent::default()
            .event("events.gap")
            .data(serde_json::json!({ "after": id.to_string() }).to_string()))
    });
    let stream =
        futures::stream::iter(first).chain(futures::stream::unfold(c, |mut c| async move {
            let l = c.next().await?;
            Some((Ok(frame(&l)), c))
        }));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(s.keepalive)))
}
