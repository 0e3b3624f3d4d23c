//! Dashboard sessions in Redis: one STRING per session, `<prefix>:session:<digest>`, holding the
//! session as JSON with a millisecond TTL (`SET PX`), so every API process sees every login and
//! Redis forgets expired ones by itself. Implements `crate::backend::Sessions`.
use super::{ConnectionManager, Keys, Result};
use crate::backend::{Session, Sessions};
use async_trait::async_trait;
use std::time::Duration;

pub struct RedisSessions {
    pub(super) conn: ConnectionManager,
    pub(super) prefix: String,
}

#[async_trait]
impl Sessions for RedisSessions {
    async fn create(&self, key: &str, session: &Session, ttl: Duration) -> Result<()> {
        let value = serde_json::to_string(session).unwrap_or_default();
        let _: () = redis::cmd("SET")
            .arg(Keys::session(&self.prefix, key))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Session>> {
        let v: Option<String> = redis::cmd("GET")
            .arg(Keys::session(&self.prefix, key))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let _: () = redis::cmd("DEL")
            .arg(Keys::session(&self.prefix, key))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
