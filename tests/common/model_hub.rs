//! A local HTTP server standing in for the model hub: `GET /<file>` answers the file of that
//! name under its folder (e.g. `$CW_TEST_MODEL_DIR`), 404 for any other. It counts the requests
//! per path, and can cut one file short (the full `Content-Length` announced, half the body
//! sent, the connection closed), as a download interrupted mid-way.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub struct Inner {
    /// Requests seen, by path.
    pub requests: Mutex<HashMap<String, usize>>,
    /// Paths answered with half their body.
    pub cut_short: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct ModelHub {
    /// `http://127.0.0.1:PORT`: files are at `{url}/{file}`.
    pub url: String,
    pub inner: Arc<Inner>,
}

impl ModelHub {
    /// Serve the files under `dir` until the test's runtime ends.
    pub async fn start(dir: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the hub");
        let url = format!("http://{}", listener.local_addr().expect("hub address"));
        let inner = Arc::new(Inner::default());
        let shared = inner.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, dir.clone(), shared.clone()));
            }
        });
        Self { url, inner }
    }

    pub fn requests(&self, path: &str) -> usize {
        let seen = self.inner.requests.lock().unwrap();
        seen.get(path).copied().unwrap_or(0)
    }

    pub fn total_requests(&self) -> usize {
        self.inner.requests.lock().unwrap().values().sum()
    }

    pub fn cut_short(&self, path: &str) {
        self.inner.cut_short.lock().unwrap().push(path.to_string());
    }

    pub fn heal(&self) {
        self.inner.cut_short.lock().unwrap().clear();
    }
}

/// One request per connection (`Connection: close`).
async fn serve(mut conn: TcpStream, dir: PathBuf, inner: Arc<Inner>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    *inner
        .requests
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default() += 1;
    let rel = path.trim_start_matches('/');
    let file = (!rel.split('/').any(|p| p == ".." || p.is_empty()))
        .then(|| dir.join(rel))
        .filter(|p| p.is_file());
    let Some(file) = file else {
        let body = format!("no {path} here\n");
        let _ = conn
            .write_all(
                format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        return;
    };
    let body = tokio::fs::read(&file).await.expect("read a hub file");
    let short = inner.cut_short.lock().unwrap().contains(&path);
    let sent = if short {
        &body[..body.len() / 2]
    } else {
        &body[..]
    };
    let header = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if conn.write_all(header.as_bytes()).await.is_ok() {
        let _ = conn.write_all(sent).await;
    }
    let _ = conn.shutdown().await;
}
