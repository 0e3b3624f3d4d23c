//! `[api]` and `[http]`: the producers' API (its keys, admins, batch and body sizes) and the
//! HTTP server's limits, readiness checks and dashboard sessions. Read from the config file,
//! checked at start (`HttpSettings::validate`, with the JWT secret's length), and handed on to
//! `api/` and `http/`.
use super::ConfigError;
use super::validate::{positive, secs};
use serde::Deserialize;

/// `[api]`: `/api/v1` and `/dashboard`, served on `http_addr` beside `/metrics`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    pub enabled: bool,
    /// Serve the API and dashboard on their own address instead of `http_addr` (also
    /// `CW_API_ADDR`).
    pub addr: Option<String>,
    /// HS256 secret shared with Chatter for its JWTs (`sub` = user id); also `CW_JWT_SECRET`.
    /// At least 32 bytes (`MIN_JWT_SECRET`): a shorter one stops the start.
    pub jwt_secret: Option<String>,
    /// User ids with admin rights (all jobs, all events, cleanup, the dashboard).
    pub admins: Vec<String>,
    /// Bearer API keys, stored as the SHA-256 of the key (`chatter-worker api-key new`).
    pub keys: Vec<ApiKeySettings>,
    /// The kinds users may enqueue through the API (admins: every kind). A user's
    /// `chunk_document` must name a document they own.
    pub user_kinds: Vec<String>,
    /// The most jobs one `POST /api/v1/jobs/batch` takes.
    pub max_batch: usize,
    /// Largest request body of the batch route, MB; at least `[limits] max_job_mb` (checked at
    /// start). The single-job routes read at most the largest job allowed plus 64 KiB.
    pub max_body_mb: f64,
    /// Seconds between SSE keep-alive comments.
    pub keepalive_secs: f64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: None,
            jwt_secret: None,
            admins: Vec::new(),
            keys: Vec::new(),
            user_kinds: vec!["chunk_document".into(), "run_workflow".into()],
            max_batch: 10_000,
            max_body_mb: 64.0,
            keepalive_secs: 15.0,
        }
    }
}

/// `[[api.keys]]`: one API key.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    pub name: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// The user id jobs enqueued with this key belong to.
    pub user: String,
    #[serde(default)]
    pub admin: bool,
}

/// Shortest `jwt_secret` accepted: HS256 keys of fewer bytes can be brute-forced offline from
/// one token.
pub const MIN_JWT_SECRET: usize = 32;

impl ApiSettings {
    /// Largest request body, bytes.
    pub fn max_body(&self) -> usize {
        (self.max_body_mb * 1024.0 * 1024.0) as usize
    }

    /// The JWT secret in use: `[api] jwt_secret`, else `CW_JWT_SECRET`; empty means none.
    pub fn jwt_secret(&self) -> Option<String> {
        self.jwt_secret
            .clone()
            .or_else(|| std::env::var("CW_JWT_SECRET").ok())
            .filter(|s| !s.is_empty())
    }
}

/// `[http]`: limits of the HTTP server (every listener: `/metrics`, health, API, dashboard),
/// its readiness checks and the dashboard's sessions.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Time a client has to send a request's line and headers; slower ones are disconnected.
    pub header_timeout_secs: f64,
    /// Time a client has to send a request's whole body (API and dashboard posts); slower
    /// ones get 408.
    pub body_timeout_secs: f64,
    /// Connections served at once per listener; the next ones wait until one closes.
    pub max_connections: usize,
    /// Longest `/readyz` waits for Redis and PostgreSQL to answer before calling them down.
    pub ready_timeout_secs: f64,
    /// Lifetime of a dashboard login (its session in Redis and its cookie).
    pub session_ttl_secs: f64,
    /// Always mark the session cookie `Secure` (the dashboard is only reached over HTTPS).
    pub secure_cookie: bool,
    /// Mark the session cookie `Secure` when the request says `X-Forwarded-Proto: https`. Only
    /// for a server reached through a TLS-terminating proxy that sets that header itself.
    pub trust_forwarded_proto: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout_secs: 10.0,
            body_timeout_secs: 30.0,
            max_connections: 1024,
            ready_timeout_secs: 2.0,
            session_ttl_secs: 8.0 * 3600.0,
            secure_cookie: false,
            trust_forwarded_proto: false,
        }
    }
}

impl HttpSettings {
    pub(super) fn validate(&self, api: &ApiSettings) -> Result<(), ConfigError> {
        for (field, v) in [
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("ready_timeout_secs", self.ready_timeout_secs),
            ("session_ttl_secs", self.session_ttl_secs),
        ] {
            positive(&format!("[http] {field}"), v, 0.01)?;
            secs(&format!("[http] {field}"), v)?;
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "[http] max_connections must be at least 1".into(),
            ));
        }
        if let Some(secret) = api.jwt_secret().filter(|s| s.len() < MIN_JWT_SECRET) {
            return Err(ConfigError::Invalid(format!(
                "[api] jwt_secret (or CW_JWT_SECRET) is {} bytes: it must be at least {MIN_JWT_SECRET} \
                 (e.g. `openssl rand -hex 32`)",
                secret.len()
            )));
        }
        Ok(())
    }
}
