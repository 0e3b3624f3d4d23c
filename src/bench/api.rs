//! `bench api`: enqueue requests/s and p99 of `POST /api/v1/jobs` under wrk (Debian's, through
//! `scripts/bench-api.sh`: 64 connections on loopback), next to the Redis-direct rate of the same
//! run: the same number of concurrent producers calling `RedisQueue::enqueue` once per job. The
//! API is served in this process (no worker pools: jobs accumulate); each round uses a fresh
//! prefix, deleted afterwards.
use crate::api::{ApiState, auth};
use crate::config::{ApiKeySettings, Settings};
use crate::queue::{self, RedisQueue};
use chatter_jobs::{JobBuilder, Registry};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct ApiBenchArgs {
    /// Seconds of load per round (each of wrk and Redis-direct).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent connections (wrk) and producers (Redis-direct).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Timed rounds (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Debug, Serialize)]
pub struct Round {
    pub http_requests_per_s: f64,
    pub http_p50_ms: f64,
    pub http_p99_ms: f64,
    pub direct_enqueues_per_s: f64,
    pub direct_p50_ms: f64,
    pub direct_p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct ApiBenchReport {
    pub seconds: u64,
    pub connections: usize,
    pub rounds: Vec<Round>,
    pub http_requests_per_s_median: f64,
    pub http_p99_ms_median: f64,
    pub direct_enqueues_per_s_median: f64,
    pub direct_p99_ms_median: f64,
    /// HTTP rate / Redis-direct rate.
    pub ratio_median: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn drop_prefix(url: &str, prefix: &str) {
    let _ = queue::delete_matching(url, &format!("{prefix}:*")).await;
}

async fn direct(q: &RedisQueue, secs: u64, producers: usize) -> Result<(f64, f64, f64), String> {
    let stop = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            let mut n = 0u64;
            while Instant::now() < stop {
                let job = JobBuilder::new("ping", "maintenance")
                    .owner("bench")
                    .build();
                let t = Instant::now();
                q.enqueue(&job).await.map_err(|e| e.to_string())?;
                let _ = h.record(t.elapsed().as_micros() as u64);
                n += 1;
            }
            Ok::<_, String>((n, h))
        }));
    }
    let mut total = 0;
    let mut all = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        let (n, h) = t.await.map_err(|e| e.to_string())??;
        total += n;
        all.add(h).map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((
        total as f64 / secs,
        all.value_at_quantile(0.5) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
    ))
}

fn wrk(base: &str, token: &str, a: &ApiBenchArgs) -> Result<(f64, f64, f64), String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-api.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(base)
        .arg(token)
        .env("DURATION", a.seconds.to_string())
        .env("CONNECTIONS", a.connections.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("scripts/bench-api.sh: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    if !out.status.success() {
        return Err(format!(
            "scripts/bench-api.sh failed ({}): {text}",
            out.status
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("bench-api.sh said {line:?}: {e}"))?;
    let f = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    Ok((
        f("/requests_per_s"),
        f("/latency_ms/p50"),
        f("/latency_ms/p99"),
    ))
}

pub async fn run(a: &ApiBenchArgs, redis_url: &str) -> Result<ApiBenchReport, String> {
    let conn = queue::connect(redis_url).await.map_err(|e| e.to_string())?;
    let token = auth::new_key();
    let mut rounds = Vec::new();
    for r in 0..a.rounds {
        let prefix = format!("bench-api-{}", ulid::Ulid::new());
        let mut s = Settings {
            redis_url: Some(redis_url.to_string()),
            prefix: prefix.clone(),
            ..Settings::default()
        };
        s.api.user_kinds.push("ping".into());
        s.api.keys.push(ApiKeySettings {
            name: "bench".into(),
            sha256: auth::hash_key(&token),
            user: "bench".into(),
            admin: false,
        });
        let stop = CancellationToken::new();
        let backend =
            std::sync::Arc::new(queue::RedisBackend::new(redis_url, &prefix, conn.clone()));
        let state = ApiState::new(&s, Registry::builtin(), backend, None, stop.clone())
            .await
            .map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let base = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let app = crate::api::router(state, 1 << 20);
        let server_stop = stop.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { server_stop.cancelled().await })
                .await
        });
        let (http_rps, http_p50, http_p99) = {
            let (base, token, a) = (base.clone(), token.clone(), a.clone());
            tokio::task::spawn_blocking(move || wrk(&base, &token, &a))
                .await
                .map_err(|e| e.to_string())??
        };
        stop.cancel();
        let _ = server.await;
        drop_prefix(redis_url, &prefix).await;
        let q = RedisQueue::new(conn.clone(), &prefix, "maintenance", s.queue_options());
        let (d_rps, d_p50, d_p99) = direct(&q, a.seconds, a.connections).await?;
        drop_prefix(redis_url, &prefix).await;
        eprintln!(
            "round {}: HTTP {http_rps:.0} req/s (p99 {http_p99:.2} ms), Redis-direct {d_rps:.0}/s (p99 {d_p99:.2} ms)",
            r + 1
        );
        rounds.push(Round {
            http_requests_per_s: http_rps,
            http_p50_ms: http_p50,
            http_p99_ms: http_p99,
            direct_enqueues_per_s: d_rps,
            direct_p50_ms: d_p50,
            direct_p99_ms: d_p99,
        });
    }
    let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let ratio = median(
        rounds
            .iter()
            .map(|r| r.http_requests_per_s / r.direct_enqueues_per_s.max(1e-9))
            .collect(),
    );
    Ok(ApiBenchReport {
        seconds: a.seconds,
        connections: a.connections,
        http_requests_per_s_median: m(|r| r.http_requests_per_s),
        http_p99_ms_median: m(|r| r.http_p99_ms),
        direct_enqueues_per_s_median: m(|r| r.direct_enqueues_per_s),
        direct_p99_ms_median: m(|r| r.direct_p99_ms),
        ratio_median: ratio,
        rounds,
    })
}
