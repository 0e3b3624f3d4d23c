//! Records whose bytes are not UTF-8 (a dead letter whose payload is raw bytes, a field written by
//! a foreign tool) and job keys that are not hashes are shown, lossily and marked, by every
//! reader: `dead list`, `jobs show`, the API's listing and show, the dashboard's dead letters and
//! job page, and the queue's own readers.
#[path = "common/api.rs"]
mod api;
mod common;

use common::*;
use std::process::Command;

const Q: &str = "maintenance";

/// A dead letter with a raw-bytes payload and error; a second whose key is a string.
async fn seed(h: &Harness) -> (String, String) {
    let q = h.queue(Q);
    let mut c = h.conn.clone();
    let raw = ulid::Ulid::new().to_string();
    let _: () = redis::cmd("HSET")
        .arg(q.keys().job(&raw))
        .arg("payload")
        .arg(&b"\xff\xfe{\"not\": utf8}\x80"[..])
        .arg("status")
        .arg("failed")
        .arg("priority")
        .arg("normal")
        .arg("error")
        .arg(&b"decode failed \xc3\x28"[..])
        .arg("completed_at")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let stringy = ulid::Ulid::new().to_string();
    let _: () = redis::cmd("SET")
        .arg(q.keys().job(&stringy))
        .arg(&b"\x00\x9f raw"[..])
        .query_async(&mut c)
        .await
        .unwrap();
    for id in [&raw, &stringy] {
        let _: () = redis::cmd("ZADD")
            .arg(q.keys().dead())
            .arg(1)
            .arg(id)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("SADD")
        .arg(format!("{}:queues", h.prefix))
        .arg(Q)
        .query_async(&mut c)
        .await
        .unwrap();
    (raw, stringy)
}

#[tokio::test]
async fn the_queue_reads_them_lossily_and_marks_them() {
    let h = setup().await;
    let (raw, stringy) = seed(&h).await;
    let q = h.queue(Q);
    let r = q.show(&raw).await.unwrap().unwrap();
    assert_eq!(r.status, "failed");
    assert_eq!(r.lossy_fields, vec!["error", "payload"]);
    let e = r.error_message.unwrap();
    assert!(
        e.contains("not UTF-8, shown lossily: error, payload"),
        "{e}"
    );
    assert!(r.raw_payload.unwrap().contains('\u{fffd}'));
    let s = q.show(&stringy).await.unwrap().unwrap();
    assert!(
        s.error_message.unwrap().contains("WRONGTYPE"),
        "a key that is not a hash is still shown"
    );
    let dead = q.dead_list(0, 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    // The sweep turns the string into a record that says what happened.
    q.sweep(std::time::Duration::from_secs(30)).await.unwrap();
    let s = q.show(&stringy).await.unwrap().unwrap();
    assert!(
        s.error_message.unwrap().contains("is a string, not a hash"),
        "{:?}",
        q.show(&stringy).await
    );
    assert_eq!(s.lossy_fields, vec!["payload"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_api_show_them() {
    let h = setup().await;
    let (raw, stringy) = seed(&h).await;
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
            .args(args)
            .env("REDIS_URL", &h.url)
            .env("CW_PREFIX", &h.prefix)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    let list = cli(&["dead", "list", Q]);
    assert!(list.contains(&raw) && list.contains(&stringy), "{list}");
    let shown = cli(&["jobs", "show", &raw]);
    assert!(shown.contains("shown lossily"), "{shown}");
    cli(&["jobs", "show", &stringy]);

    let dir = api::tmpdir("unreadable");
    let server = api::spawn_api(&h.prefix, &dir).await;
    let c = reqwest::Client::new();
    let get = |path: String| {
        let c = c.clone();
        let url = format!("{}{path}", server.base);
        async move {
            let r = c
                .get(url)
                .bearer_auth(api::key("admin"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = get("/api/v1/jobs?status=failed".into()).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert!(ids.contains(&raw.as_str()), "{body}");
    let (status, body) = get(format!("/api/v1/jobs/{raw}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("shown lossily"),
        "{body}"
    );
    // The dashboard's dead letters and job page, logged in as the admin.
    let d = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = d
        .post(format!("{}/dashboard/login", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", api::key("admin")))
        .send()
        .await
        .unwrap();
    let session = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    for path in [
        "/dashboard/dead".to_string(),
        format!("/dashboard/jobs/{raw}"),
    ] {
        let r = d
            .get(format!("{}{path}", server.base))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains(&raw) && page.contains("shown lossily"),
            "{path}: {page}"
        );
    }
    // `queues sweep` runs one consistency pass: the string key becomes a record saying so.
    let swept = cli(&["queues", "sweep", Q]);
    assert!(swept.contains("dead-lettered 1"), "{swept}");
    let shown = cli(&["jobs", "show", &stringy]);
    assert!(shown.contains("is a string, not a hash"), "{shown}");
}
