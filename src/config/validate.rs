//! The checks serde cannot make: positive sizes, valid durations, known queues and kinds, valid
//! networks. `Settings::validate` runs at the start of every command that uses the settings and
//! returns the first problem as a [`ConfigError`] naming the key (`[section] field`) and value.
use super::{ConfigError, ProviderKind, Settings};
use chatter_jobs::Registry;
use std::time::Duration;

pub(super) fn secs(field: &str, v: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(v).map_err(|_| {
        ConfigError::Invalid(format!("`{field}` = {v} is not a valid number of seconds"))
    })
}

/// A finite number of at least `min` (seconds or a factor), or an error naming the field.
pub(super) fn positive(field: &str, v: f64, min: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= min {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "`{field}` = {v} must be a finite number of at least {min}"
        )))
    }
}

/// CIDR networks or single addresses, or an error naming the bad entry.
pub fn networks(field: &str, list: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.iter()
        .map(|n| {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::Invalid(format!(
                        "{field}: {n:?} is not an address or CIDR network"
                    ))
                })
        })
        .collect()
}

impl Settings {
    /// Check what serde cannot: positive sizes, valid durations, known queues and kinds.
    pub fn validate(&self, registry: &Registry) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "`concurrency` must be at least 1".into(),
            ));
        }
        for (name, q) in &self.queue {
            if q.concurrency == Some(0) {
                return Err(ConfigError::Invalid(format!(
                    "[queue.{name}] concurrency must be at least 1"
                )));
            }
            for (field, v) in [
                ("lease_secs", q.lease_secs),
                ("timeout_secs", q.timeout_secs),
            ] {
                if let Some(v) = v {
                    positive(&format!("[queue.{name}] {field}"), v, 0.03)?;
                }
            }
        }
        for (kind, p) in &self.retry {
            for (field, v) in [
                ("base_secs", p.base_secs),
                ("factor", p.factor),
                ("cap_secs", p.cap_secs),
            ] {
                positive(&format!("[retry.{kind}] {field}"), v, 0.0)?;
            }
            if !(0.0..=10.0).contains(&p.jitter) {
                return Err(ConfigError::Invalid(format!(
                    "[retry.{kind}] jitter = {} must be within 0..=10",
                    p.jitter
                )));
            }
        }
        for kind in self.retry.keys() {
            registry
                .resolve(kind)
                .map_err(|e| ConfigError::Invalid(format!("[retry.{kind}]: {e}")))?;
        }
        for (field, v) in [
            ("lease_secs", self.lease_secs),
            ("timeout_secs", self.timeout_secs),
            ("shutdown_deadline_secs", self.shutdown_deadline_secs),
            ("finished_retention_secs", self.finished_retention_secs),
            ("idempotency_ttl_secs", self.idempotency_ttl_secs),
            ("rescue_interval_secs", self.rescue_interval_secs),
            ("retention_interval_secs", self.retention_interval_secs),
            ("sweep_interval_secs", self.sweep_interval_secs),
        ] {
            secs(field, v)?;
        }
        positive("timeout_secs", self.timeout_secs, 0.001)?;
        // A sweep reads every job key: more often than every 10 s would be a load, not a check.
        if self.sweep_interval_secs != 0.0 {
            positive(
                "sweep_interval_secs (0 = off)",
                self.sweep_interval_secs,
                10.0,
            )?;
        }
        self.http.validate(&self.api)?;
        let a = &self.api;
        positive("[api] max_body_mb", a.max_body_mb, 0.001)?;
        self.limits.validate(registry, a.max_body_mb)?;
        positive("[api] keepalive_secs", a.keepalive_secs, 0.1)?;
        secs("[api] keepalive_secs", a.keepalive_secs)?;
        for kind in &a.user_kinds {
            registry
                .resolve(kind)
                .map_err(|e| ConfigError::Invalid(format!("[api] user_kinds: {e}")))?;
        }
        if a.max_batch == 0 {
            return Err(ConfigError::Invalid(
                "[api] max_batch must be at least 1".into(),
            ));
        }
        for k in &a.keys {
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::Invalid(format!(
                    "[[api.keys]] {:?}: sha256 must be 64 hex digits (chatter-worker api-key new)",
                    k.name
                )));
            }
            if k.user.is_empty() || k.user.len() > 64 {
                return Err(ConfigError::Invalid(format!(
                    "[[api.keys]] {:?}: user must be 1..=64 bytes",
                    k.name
                )));
            }
        }
        let c = &self.chunking;
        positive("[chunking] max_file_mb", c.max_file_mb, 0.000001)?;
        positive("[chunking] max_unzipped_mb", c.max_unzipped_mb, 0.000001)?;
        positive("[chunking] max_text_mb", c.max_text_mb, 0.000001)?;
        positive(
            "[chunking] extractor_memory_mb",
            c.extractor_memory_mb as f64,
            64.0,
        )?;
        positive(
            "[chunking] extract_timeout_secs",
            c.extract_timeout_secs,
            0.001,
        )?;
        positive("[chunking] fetch_timeout_secs", c.fetch_timeout_secs, 0.001)?;
        secs("[chunking] extract_timeout_secs", c.extract_timeout_secs)?;
        secs("[chunking] fetch_timeout_secs", c.fetch_timeout_secs)?;
        for (field, v) in [
            ("max_chunks", c.max_chunks),
            ("embed_batch", c.embed_batch),
            ("max_zip_ratio", c.max_zip_ratio as usize),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "[chunking] {field} must be at least 1"
                )));
            }
        }
        self.allow_networks()?;
        let e = &self.embedding;
        let kind = e.kind()?;
        if kind == ProviderKind::Local && e.model_dir.is_none() {
            return Err(ConfigError::Invalid(
                "[embedding] provider = \"local\" needs model_dir (or CW_MODEL_DIR)".into(),
            ));
        }
        for (field, v) in [
            ("request_timeout_secs", e.request_timeout_secs),
            ("rate_window_secs", e.rate_window_secs),
            ("max_retry_after_secs", e.max_retry_after_secs),
        ] {
            positive(&format!("[embedding] {field}"), v, 0.001)?;
            secs(&format!("[embedding] {field}"), v)?;
        }
        for (field, v) in [
            ("max_inputs_per_request", e.max_inputs_per_request as u64),
            ("max_tokens_per_request", e.max_tokens_per_request as u64),
            ("local_batch", e.local_batch.unwrap_or(1) as u64),
            ("ef_search", e.ef_search as u64),
            ("dimensions", e.dimensions.unwrap_or(1) as u64),
            ("requests_per_minute", e.requests_per_minute.unwrap_or(1)),
            ("tokens_per_minute", e.tokens_per_minute.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "[embedding] {field} must be at least 1"
                )));
            }
        }
        let w = &self.workflows;
        for (field, v) in [
            ("request_timeout_secs", w.request_timeout_secs),
            ("execution_timeout_secs", w.execution_timeout_secs),
            ("step_timeout_secs", w.step_timeout_secs),
        ] {
            positive(&format!("[workflows] {field}"), v, 0.001)?;
            secs(&format!("[workflows] {field}"), v)?;
        }
        secs("[workflows] inline_delay_secs", w.inline_delay_secs)?;
        for (field, v) in [
            ("token_budget", w.token_budget),
            ("max_steps", w.max_steps as u64),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "[workflows] {field} must be at least 1"
                )));
            }
        }
        for (model, p) in &w.prices {
            if !(p.prompt_per_million >= 0.0 && p.completion_per_million >= 0.0) {
                return Err(ConfigError::Invalid(format!(
                    "[workflows.prices.{model:?}] prices must be 0 or more"
                )));
            }
        }
        networks("[workflows] allow_networks", &w.allow_networks)?;
        positive("scheduler_poll_secs", self.scheduler_poll_secs, 0.01)?;
        secs("scheduler_poll_secs", self.scheduler_poll_secs)?;
        positive("idempotency_ttl_secs", self.idempotency_ttl_secs, 0.001)?;
        if self.lease_secs < 0.03 {
            return Err(ConfigError::Invalid(format!(
                "`lease_secs` = {} is too short (at least 0.03)",
                self.lease_secs
            )));
        }
        Ok(())
    }

    /// The networks `[chunking] allow_networks` names, or an error naming the bad entry.
    pub fn allow_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        networks("[chunking] allow_networks", &self.chunking.allow_networks)
    }
}
