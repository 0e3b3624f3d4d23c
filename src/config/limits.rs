//! `[limits]`: how large a job may be and how far ahead it may be scheduled.
//!
//! Read from the config file into [`LimitsSettings`], checked at start, and handed on as the
//! [`JobLimits`] in `QueueOptions`, which every enqueue checks (API, CLI, cron, handlers'
//! follow-up jobs, Rust producers). Sizes are of the serialized JSON, in MB (MiB); a kind may
//! override any of them in `[limits.kinds.KIND]`.
use super::ConfigError;
use chatter_jobs::limits::{DEFAULT_FIELD_BYTES, DEFAULT_JOB_BYTES, DEFAULT_SCHEDULE_HORIZON};
use chatter_jobs::{JobLimits, Registry, SizeLimits};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

const MB: f64 = 1024.0 * 1024.0;

/// `[limits]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSettings {
    /// Largest `args` array, MB of JSON (default 1).
    pub max_args_mb: f64,
    /// Largest `kwargs` object, MB of JSON (default 1).
    pub max_kwargs_mb: f64,
    /// Largest `metadata` object, MB of JSON (default 1).
    pub max_metadata_mb: f64,
    /// Largest `kwargs.inputs` (a workflow's inputs), MB of JSON (default 1).
    pub max_inputs_mb: f64,
    /// Largest whole job as stored (every field, tags included), MB (default 4). The single-job
    /// API routes read at most this (plus 64 KiB) of a request body.
    pub max_job_mb: f64,
    /// Farthest ahead a job may be scheduled (`schedule_at`, `--delay`), days (default 365).
    pub schedule_horizon_days: f64,
    /// Per-kind overrides: `[limits.kinds.run_workflow] max_inputs_mb = 8`.
    pub kinds: BTreeMap<String, KindLimits>,
}

/// `[limits.kinds.KIND]`: any size left out is the `[limits]` one.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct KindLimits {
    pub max_args_mb: Option<f64>,
    pub max_kwargs_mb: Option<f64>,
    pub max_metadata_mb: Option<f64>,
    pub max_inputs_mb: Option<f64>,
    pub max_job_mb: Option<f64>,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        let field = DEFAULT_FIELD_BYTES as f64 / MB;
        Self {
            max_args_mb: field,
            max_kwargs_mb: field,
            max_metadata_mb: field,
            max_inputs_mb: field,
            max_job_mb: DEFAULT_JOB_BYTES as f64 / MB,
            schedule_horizon_days: DEFAULT_SCHEDULE_HORIZON.as_secs_f64() / 86_400.0,
            kinds: BTreeMap::new(),
        }
    }
}

fn bytes(mb: f64) -> u64 {
    (mb * MB) as u64
}

impl LimitsSettings {
    fn sizes(&self, k: &KindLimits) -> SizeLimits {
        SizeLimits {
            args: bytes(k.max_args_mb.unwrap_or(self.max_args_mb)),
            kwargs: bytes(k.max_kwargs_mb.unwrap_or(self.max_kwargs_mb)),
            metadata: bytes(k.max_metadata_mb.unwrap_or(self.max_metadata_mb)),
            inputs: bytes(k.max_inputs_mb.unwrap_or(self.max_inputs_mb)),
            job: bytes(k.max_job_mb.unwrap_or(self.max_job_mb)),
        }
    }

    /// The limits every enqueue checks.
    pub fn job_limits(&self) -> JobLimits {
        JobLimits {
            sizes: self.sizes(&KindLimits::default()),
            per_kind: self
                .kinds
                .iter()
                .map(|(kind, k)| (kind.clone(), self.sizes(k)))
                .collect(),
            schedule_horizon: Duration::try_from_secs_f64(self.schedule_horizon_days * 86_400.0)
                .unwrap_or(DEFAULT_SCHEDULE_HORIZON),
        }
    }

    /// Positive sizes and horizon, known kinds, and a batch body (`[api] max_body_mb`) that can
    /// hold the largest job allowed.
    pub fn validate(&self, registry: &Registry, max_body_mb: f64) -> Result<(), ConfigError> {
        let check = |field: String, v: f64| {
            if v.is_finite() && v * MB >= 1.0 {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "{field} = {v} must be a finite size of at least one byte (in MB)"
                )))
            }
        };
        let within = |at: &str, k: &KindLimits| {
            let f = self.fields(k);
            for (name, v) in f {
                check(format!("{at} {name}"), v)?;
            }
            // `kwargs.inputs` is part of `kwargs`, and every field part of the job: a larger
            // part could never be used.
            let [args, kwargs, metadata, inputs, job] = f;
            for (part, whole) in [
                (inputs, kwargs),
                (args, job),
                (kwargs, job),
                (metadata, job),
            ] {
                if part.1 > whole.1 {
                    return Err(ConfigError::Invalid(format!(
                        "{at} {} = {} is larger than {} = {}, which contains it",
                        part.0, part.1, whole.0, whole.1
                    )));
                }
            }
            Ok(())
        };
        within("[limits]", &KindLimits::default())?;
        for (kind, k) in &self.kinds {
            registry
                .resolve(kind)
                .map_err(|e| ConfigError::Invalid(format!("[limits.kinds.{kind}]: {e}")))?;
            within(&format!("[limits.kinds.{kind}]"), k)?;
        }
        let h = self.schedule_horizon_days;
        if !(h.is_finite() && h > 0.0 && h <= 36_500.0) {
            return Err(ConfigError::Invalid(format!(
                "[limits] schedule_horizon_days = {h} must be within 0..=36500"
            )));
        }
        let largest = self.job_limits().largest_job_bytes() as f64 / MB;
        if max_body_mb < largest {
            return Err(ConfigError::Invalid(format!(
                "[api] max_body_mb = {max_body_mb} is smaller than the largest job allowed \
                 ([limits] max_job_mb, or a kind's: {largest}): such a job could not be sent"
            )));
        }
        Ok(())
    }

    fn fields(&self, k: &KindLimits) -> [(&'static str, f64); 5] {
        [
            ("max_args_mb", k.max_args_mb.unwrap_or(self.max_args_mb)),
            (
                "max_kwargs_mb",
                k.max_kwargs_mb.unwrap_or(self.max_kwargs_mb),
            ),
            (
                "max_metadata_mb",
                k.max_metadata_mb.unwrap_or(self.max_metadata_mb),
            ),
            (
                "max_inputs_mb",
                k.max_inputs_mb.unwrap_or(self.max_inputs_mb),
            ),
            ("max_job_mb", k.max_job_mb.unwrap_or(self.max_job_mb)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_inherit_and_bad_values_are_named() {
        let s: LimitsSettings = toml::from_str(
            "max_kwargs_mb = 2\n[kinds.run_workflow]\nmax_inputs_mb = 8\nmax_kwargs_mb = 8\nmax_job_mb = 9\n",
        )
        .unwrap();
        let l = s.job_limits();
        assert_eq!(l.sizes.kwargs, 2 << 20);
        let w = l.sizes_for("run_workflow");
        assert_eq!((w.inputs, w.kwargs, w.args), (8 << 20, 8 << 20, 1 << 20));
        let reg = Registry::builtin();
        s.validate(&reg, 64.0).unwrap();
        let err = s.validate(&reg, 4.0).unwrap_err().to_string();
        assert!(err.contains("max_body_mb"), "{err}");
        let bad: LimitsSettings =
            toml::from_str("[kinds.run_workflow]\nmax_inputs_mb = 8\n").unwrap();
        let err = bad.validate(&reg, 64.0).unwrap_err().to_string();
        assert!(
            err.contains("max_inputs_mb = 8 is larger than max_kwargs_mb"),
            "{err}"
        );
        let bad: LimitsSettings = toml::from_str("[kinds.nope]\nmax_job_mb = 1\n").unwrap();
        let err = bad.validate(&reg, 64.0).unwrap_err().to_string();
        assert!(err.contains("[limits.kinds.nope]"), "{err}");
        let bad: LimitsSettings = toml::from_str("[kinds.ping]\nmax_job_mb = 0\n").unwrap();
        let err = bad.validate(&reg, 64.0).unwrap_err().to_string();
        assert!(err.contains("[limits.kinds.ping] max_job_mb"), "{err}");
        assert!(toml::from_str::<LimitsSettings>("max_job = 1\n").is_err());
    }
}
