//! Dashboard logins as the backend stores them: a [`Session`] (who logged in) under an opaque key
//! for a time-to-live, shared by every API process. Callers pass a digest of the cookie's secret
//! id, never the id itself, so a read of the store gives no usable cookie; the cookie, the TTL's
//! choice and the gate are `crate::api::session`'s.
use super::Result;
use async_trait::async_trait;
use std::time::Duration;

/// Who a dashboard session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub user: String,
    pub admin: bool,
}

/// Sessions with a time-to-live: gone (`get` answers `None`) once it passes.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// Store `session` under `key` for `ttl` (replacing any there).
    async fn create(&self, key: &str, session: &Session, ttl: Duration) -> Result<()>;
    /// The session under `key`; `None` when unknown, expired or unreadable.
    async fn get(&self, key: &str) -> Result<Option<Session>>;
    async fn delete(&self, key: &str) -> Result<()>;
}
