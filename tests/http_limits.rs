//! The HTTP server of a real worker process against bad clients: slow-header clients cut off
//! by the header timeout while a normal client is served, unauthenticated large posts answered
//! 401 without their body being read (the server's RSS measured around them), body size and time
//! limits, nosniff on every route family, the docs page's framing/CSP, dashboard sessions (no
//! key in the cookie, expiry, logout refused cross-site), Content-Type exactness, a weak
//! `jwt_secret` refused at start and `queues pause` of an unknown queue refused.
#[path = "common/api.rs"]
mod api_kit;
mod common;

use api_kit::{SECRET, key, tmpdir};
use common::{free_port, redis_url, wait_until};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(60);

struct Server {
    child: tokio::process::Child,
    addr: String,
    prefix: String,
}

/// A `run` process with the API (keys for admin and u1) and the given `[http]` lines.
async fn spawn(name: &str, api: &str, http: &str) -> Server {
    let port = free_port();
    let prefix = format!("hl-{name}-{}", ulid::Ulid::new());
    let cfg = tmpdir("limits").join(format!("{name}-{port}.toml"));
    let mut text = format!(
        "prefix = \"{prefix}\"\nhttp_addr = \"127.0.0.1:{port}\"\n[http]\n{http}\n[api]\njwt_secret = \"{SECRET}\"\n{api}\n"
    );
    text += &api_kit::keys_toml(&[("admin", true), ("u1", false)], key);
    let child = api_kit::start_worker(&cfg, &text, port, "error").await;
    let addr = format!("127.0.0.1:{port}");
    Server {
        child,
        addr,
        prefix,
    }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The status line's code of a raw response (0 when the connection closed without one).
async fn status_of(s: &mut TcpStream) -> u16 {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_header_clients_are_cut_off_while_a_normal_client_is_served() {
    let srv = spawn("slow", "", "header_timeout_secs = 1").await;
    let start = Instant::now();
    let mut slow = Vec::new();
    for i in 0..500 {
        let mut s = TcpStream::connect(&srv.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Then one more header line every 300 ms, until the server hangs up.
        slow.push(tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    r = s.read(&mut buf) => match r {
                        Ok(0) | Err(_) => return true,
                        Ok(_) => continue,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {
                        if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).await.is_err() {
                            return true;
                        }
                    }
                }
            }
        }));
    }
    // Served while the 500 are held.
    let c = reqwest::Client::new();
    let served = Instant::now();
    for _ in 0..20 {
        let r = c
            .get(format!("http://{}/api/v1/jobs/stats/queues", srv.addr))
            .bearer_auth(key("admin"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    println!(
        "20 requests of a normal client beside 500 slow-header clients: {:?}",
        served.elapsed()
    );
    for t in slow {
        let closed = tokio::time::timeout(LIMIT, t)
            .await
            .expect("still held open");
        assert!(closed.unwrap(), "a slow client was not cut off");
    }
    println!(
        "500 slow-header clients cut off (header timeout 1 s) after {:?}",
        start.elapsed()
    );
    let r = c
        .get(format!("http://{}/healthz", srv.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthenticated_large_posts_get_401_without_their_body_being_read() {
    let srv = spawn(
        "bodies",
        "max_body_mb = 64",
        "body_timeout_secs = 1\nheader_timeout_secs = 5",
    )
    .await;
    let pid = srv.child.id().unwrap();
    let before = rss_kb(pid);
    const SIZE: usize = 60 * 1024 * 1024;
    let mut posts = Vec::new();
    for _ in 0..20 {
        let addr = srv.addr.clone();
        posts.push(tokio::spawn(async move {
            let s = TcpStream::connect(&addr).await.unwrap();
            let (mut r, mut w) = s.into_split();
            let head = format!(
                "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {SIZE}\r\n\r\n"
            );
            w.write_all(head.as_bytes()).await.unwrap();
            // The attacker sends the whole body; the server may hang up meanwhile.
            let writer = tokio::spawn(async move {
                let chunk = vec![b' '; 1024 * 1024];
                for _ in 0..SIZE / chunk.len() {
                    if w.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            });
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(LIMIT, r.read(&mut buf))
                .await
                .expect("an answer")
                .unwrap_or(0);
            let _ = writer.await;
            String::from_utf8_lossy(&buf[..n]).to_string()
        }));
    }
    for p in posts {
        let reply = p.await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 401"), "{reply:?}");
    }
    let after = rss_kb(pid);
    println!(
        "server VmRSS around 20 unauthenticated 60 MB posts: {} kB before, {} kB after (+{} kB)",
        before,
        after,
        after.saturating_sub(before)
    );
    assert!(
        after.saturating_sub(before) < 50 * 1024,
        "RSS grew by {} kB",
        after - before
    );

    // A 401 with the body never sent: nothing was waited for.
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    s.write_all(
        format!("POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status_of(&mut s).await, 401);
    // Authenticated and over the limit: 413 before the body.
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    let big = 65 * 1024 * 1024;
    s.write_all(format!("POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {big}\r\n\r\n", key("admin")).as_bytes())
        .await
        .unwrap();
    assert_eq!(status_of(&mut s).await, 413);
    // Authenticated, a body that stops coming: 408 after the body timeout.
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    s.write_all(format!("POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"function", key("admin")).as_bytes())
        .await
        .unwrap();
    assert_eq!(status_of(&mut s).await, 408);
}

fn session_of(r: &reqwest::Response) -> Option<(String, String)> {
    let set = r.headers().get("set-cookie")?.to_str().ok()?.to_string();
    let pair = set.split(';').next()?.to_string();
    Some((pair, set))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headers_sessions_and_content_types() {
    let srv = spawn(
        "headers",
        "",
        "session_ttl_secs = 2\ntrust_forwarded_proto = true",
    )
    .await;
    let base = format!("http://{}", srv.addr);
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // nosniff on every route family.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/jobs",
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/api/nope",
        "/dashboard",
        "/dashboard/login",
        "/nope",
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(
            r.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}: {}",
            r.status()
        );
    }
    let docs = c.get(format!("{base}/api/v1/docs")).send().await.unwrap();
    assert_eq!(docs.headers()["x-frame-options"], "DENY");
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );

    // Login: the cookie holds a session id, not the key; Secure behind a TLS proxy.
    let login = |proto: Option<&'static str>| {
        let mut r = c
            .post(format!("{base}/dashboard/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", key("admin")));
        if let Some(p) = proto {
            r = r.header("x-forwarded-proto", p);
        }
        r.send()
    };
    let r = login(None).await.unwrap();
    assert_eq!(r.status(), 303);
    let (cookie, set) = session_of(&r).expect("a session cookie");
    assert!(!set.contains(&key("admin")), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"),
        "{set}"
    );
    let (_, secure) = session_of(&login(Some("https")).await.unwrap()).unwrap();
    assert!(secure.contains("; Secure"), "{secure}");
    let mut conn = chatter_worker::queue::connect(&redis_url()).await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:session:*", srv.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for k in &keys {
        let v: String = redis::cmd("GET")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!v.contains(&key("admin")), "{v}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 2000, "{ttl}");
    }
    let dashboard = |cookie: String| {
        c.get(format!("{base}/dashboard"))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(dashboard(cookie.clone()).await.unwrap().status(), 200);
    // A cross-site logout is refused and the session lives on.
    let r = c
        .post(format!("{base}/dashboard/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(dashboard(cookie.clone()).await.unwrap().status(), 200);
    // The session expires: the login page again.
    wait_until(Duration::from_secs(10), "the session to expire", || {
        let d = dashboard(cookie.clone());
        async move {
            d.await
                .is_ok_and(|r| r.status() == 303 && r.headers()["location"] == "/dashboard/login")
        }
    })
    .await;
    // A same-origin logout deletes the session.
    let (cookie, _) = session_of(&login(None).await.unwrap()).unwrap();
    let r = c
        .post(format!("{base}/dashboard/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(dashboard(cookie).await.unwrap().status(), 303);

    // Content-Type: JSON exactly.
    let post = |ct: &'static str| {
        c.post(format!("{base}/api/v1/jobs"))
            .bearer_auth(key("admin"))
            .header("content-type", ct)
            .body(r#"{"function_name": "ping"}"#)
            .send()
    };
    for ct in ["application/jsonp", "application/json-foo", "text/plain"] {
        let r = post(ct).await.unwrap();
        assert_eq!(r.status(), 415, "{ct}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains(ct), "{v}");
    }
    assert_eq!(
        post("application/json; charset=utf-8")
            .await
            .unwrap()
            .status(),
        201
    );
}

#[test]
fn a_weak_jwt_secret_is_refused_at_start() {
    let dir = tmpdir("weak");
    let cfg = dir.join("weak.toml");
    std::fs::write(&cfg, "[api]\njwt_secret = \"short-secret\"\n").unwrap();
    let from_file = std::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--http-addr", "127.0.0.1:0"])
        .env("REDIS_URL", redis_url())
        .env_remove("CW_JWT_SECRET")
        .output()
        .unwrap();
    let from_env = std::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
        .args(["run", "--http-addr", "127.0.0.1:0"])
        .env("REDIS_URL", redis_url())
        .env("CW_JWT_SECRET", "short-secret")
        .output()
        .unwrap();
    for out in [from_file, from_env] {
        let err = String::from_utf8_lossy(&out.stderr);
        println!("{}: {err}", out.status);
        assert!(!out.status.success());
        assert!(
            err.contains("jwt_secret") && err.contains("12 bytes") && err.contains("at least 32"),
            "{err}"
        );
        assert!(
            !err.contains("short-secret"),
            "the secret is not printed: {err}"
        );
    }
}

#[test]
fn queues_pause_of_an_unknown_queue_fails_naming_it() {
    let prefix = format!("hl-pause-{}", ulid::Ulid::new());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
            .args(args)
            .env("REDIS_URL", redis_url())
            .env("CW_PREFIX", &prefix)
            .output()
            .unwrap()
    };
    for action in ["pause", "resume"] {
        let out = run(&["queues", action, "nosuch"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{action}: {err}");
        assert!(
            err.contains("\"nosuch\"") && err.contains("maintenance"),
            "{action}: {err}"
        );
    }
    let out = run(&["queues", "pause", "maintenance"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["queues", "resume", "maintenance"]);
    assert!(out.status.success());
}
