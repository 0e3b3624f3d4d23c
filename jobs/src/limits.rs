//! Bounds on what one job may carry, checked where every producer's jobs pass: enqueue.
//!
//! Receives a [`Job`] and the [`JobLimits`] in force; hands back the first breach as a
//! [`LimitError`] naming the field, the limit and the actual size. Sizes are of the serialized
//! JSON, per field (`args`, `kwargs`, `metadata`, and `kwargs.inputs`, a workflow's inputs: 1 MiB
//! each by default) and for the whole encoded job (4 MiB, which also bounds `tags` and the rest),
//! each overridable per job kind. `scheduled_at` may lie at most `schedule_horizon` ahead (365
//! days). Why at enqueue: a job that is never stored can never be fetched, retried or written to
//! the database, so one oversized request cannot grow a worker or fail every retry.
use crate::envelope::{Job, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Default byte limit of `args`, `kwargs`, `metadata` and `kwargs.inputs`, each.
pub const DEFAULT_FIELD_BYTES: u64 = 1 << 20;
/// Default byte limit of the whole encoded job.
pub const DEFAULT_JOB_BYTES: u64 = 4 << 20;
/// Default farthest `scheduled_at` ahead of now.
pub const DEFAULT_SCHEDULE_HORIZON: Duration = Duration::from_secs(365 * 24 * 3600);

/// Byte limits on one job's serialized JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeLimits {
    pub args: u64,
    pub kwargs: u64,
    pub metadata: u64,
    /// `kwargs.inputs` (run_workflow's inputs), also counted in `kwargs`.
    pub inputs: u64,
    /// The whole encoded job (every field, `tags` included).
    pub job: u64,
}

impl Default for SizeLimits {
    fn default() -> Self {
        Self {
            args: DEFAULT_FIELD_BYTES,
            kwargs: DEFAULT_FIELD_BYTES,
            metadata: DEFAULT_FIELD_BYTES,
            inputs: DEFAULT_FIELD_BYTES,
            job: DEFAULT_JOB_BYTES,
        }
    }
}

impl SizeLimits {
    fn smallest(&self) -> u64 {
        self.args
            .min(self.kwargs)
            .min(self.metadata)
            .min(self.inputs)
            .min(self.job)
    }
}

/// The limits in force: defaults, per-kind overrides, the scheduling horizon.
#[derive(Clone, Debug, PartialEq)]
pub struct JobLimits {
    pub sizes: SizeLimits,
    /// Kinds with their own sizes (`[limits.kinds.KIND]`), replacing `sizes` for that kind.
    pub per_kind: BTreeMap<String, SizeLimits>,
    pub schedule_horizon: Duration,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            sizes: SizeLimits::default(),
            per_kind: BTreeMap::new(),
            schedule_horizon: DEFAULT_SCHEDULE_HORIZON,
        }
    }
}

/// A job over one of its limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "`{field}` is {actual} bytes as JSON, over the limit of {limit} bytes for job kind {kind:?}"
    )]
    TooLarge {
        /// `args`, `kwargs`, `kwargs.inputs`, `metadata`, or `job` for the whole encoded job.
        field: &'static str,
        kind: String,
        limit: u64,
        actual: u64,
    },
    #[error(
        "`scheduled_at` {at} is {ahead_days:.1} days ahead, beyond the scheduling horizon of {horizon_days:.1} days"
    )]
    TooFar {
        at: String,
        ahead_days: f64,
        horizon_days: f64,
    },
}

impl LimitError {
    /// The job field the error is about (`schedule_at` is the API's name for `scheduled_at`).
    pub fn field(&self) -> &'static str {
        match self {
            Self::TooLarge { field, .. } => field,
            Self::TooFar { .. } => "scheduled_at",
        }
    }
}

impl JobLimits {
    pub fn sizes_for(&self, kind: &str) -> &SizeLimits {
        self.per_kind.get(kind).unwrap_or(&self.sizes)
    }

    /// The largest whole-job size any kind may have: what one request body must be able to hold.
    pub fn largest_job_bytes(&self) -> u64 {
        self.per_kind
            .values()
            .map(|s| s.job)
            .fold(self.sizes.job, u64::max)
    }

    /// Check `job` against its kind's limits, now.
    pub fn check(&self, job: &Job) -> Result<(), LimitError> {
        self.check_at(job, Timestamp::now())
    }

    pub fn check_at(&self, job: &Job, now: Timestamp) -> Result<(), LimitError> {
        self.check_sizes(job)?;
        if let Some(at) = job.scheduled_at {
            let horizon = self.schedule_horizon.as_millis() as u64;
            let ahead = at.millis().saturating_sub(now.millis());
            if ahead > horizon {
                let days = |ms: u64| ms as f64 / 86_400_000.0;
                return Err(LimitError::TooFar {
                    at: at.rfc3339(),
                    ahead_days: days(ahead),
                    horizon_days: days(horizon),
                });
            }
        }
        Ok(())
    }

    /// One counting pass over the whole job; the fields are measured only when it is larger
    /// than the smallest limit (a field is part of the job, so it cannot be larger than it).
    fn check_sizes(&self, job: &Job) -> Result<(), LimitError> {
        let limits = self.sizes_for(&job.function_name);
        let total = json_len(job);
        if total <= limits.smallest() {
            return Ok(());
        }
        let too_large = |field, limit, actual| LimitError::TooLarge {
            field,
            kind: job.function_name.clone(),
            limit,
            actual,
        };
        // The most specific field first: `kwargs.inputs` names the culprit inside `kwargs`.
        if let Some(inputs) = job.kwargs.get("inputs") {
            let n = json_len(inputs);
            if n > limits.inputs {
                return Err(too_large("kwargs.inputs", limits.inputs, n));
            }
        }
        for (field, n, limit) in [
            ("kwargs", json_len(&job.kwargs), limits.kwargs),
            ("args", json_len(&job.args), limits.args),
            ("metadata", json_len(&job.metadata), limits.metadata),
        ] {
            if n > limit {
                return Err(too_large(field, limit, n));
            }
        }
        if total > limits.job {
            return Err(too_large("job", limits.job, total));
        }
        Ok(())
    }
}

/// Bytes of `v` as compact JSON, counted without building the string.
pub fn json_len<T: Serialize + ?Sized>(v: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Only JSON values: serialising them cannot fail, and the counter never does.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::JobBuilder;
    use serde_json::json;

    fn big(n: usize) -> serde_json::Value {
        json!("x".repeat(n))
    }

    #[test]
    fn each_field_is_named_with_its_limit_and_size() {
        let l = JobLimits::default();
        let ok = JobBuilder::new("run_workflow", "workflows")
            .arguments(json!({"inputs": {"q": big(1000)}}))
            .build();
        l.check(&ok).unwrap();
        let j = JobBuilder::new("run_workflow", "workflows")
            .arguments(json!({"inputs": {"q": big(2 << 20)}}))
            .build();
        match l.check(&j).unwrap_err() {
            LimitError::TooLarge {
                field,
                limit,
                actual,
                ..
            } => {
                assert_eq!(field, "kwargs.inputs");
                assert_eq!(limit, DEFAULT_FIELD_BYTES);
                assert_eq!(actual, json_len(&j.kwargs["inputs"]));
            }
            other => panic!("{other}"),
        }
        let mut j = JobBuilder::new("ping", "maintenance").build();
        j.metadata.insert("m".into(), big(2 << 20));
        assert_eq!(l.check(&j).unwrap_err().field(), "metadata");
        let j = JobBuilder::new("ping", "maintenance")
            .arguments(json!([big(2 << 20)]))
            .build();
        assert_eq!(l.check(&j).unwrap_err().field(), "args");
        let j = JobBuilder::new("ping", "maintenance")
            .tags(vec!["t".repeat(1 << 20); 5])
            .build();
        let e = l.check(&j).unwrap_err();
        assert_eq!(e.field(), "job", "{e}");
        assert!(
            e.to_string().contains(&DEFAULT_JOB_BYTES.to_string()),
            "{e}"
        );
    }

    #[test]
    fn a_kind_may_have_its_own_limits() {
        let mut l = JobLimits::default();
        l.per_kind.insert(
            "run_workflow".into(),
            SizeLimits {
                inputs: 8 << 20,
                kwargs: 8 << 20,
                job: 9 << 20,
                ..SizeLimits::default()
            },
        );
        let j = JobBuilder::new("run_workflow", "workflows")
            .arguments(json!({"inputs": big(3 << 20)}))
            .build();
        l.check(&j).unwrap();
        let mut other = j.clone();
        other.function_name = "ping".into();
        assert_eq!(l.check(&other).unwrap_err().field(), "kwargs.inputs");
        assert_eq!(l.largest_job_bytes(), 9 << 20);
    }

    #[test]
    fn schedule_beyond_the_horizon_is_refused() {
        let l = JobLimits::default();
        let now = Timestamp::now();
        let day = 86_400_000;
        let near = JobBuilder::new("ping", "q")
            .scheduled_at(Timestamp(now.0 + 300 * day))
            .build();
        l.check_at(&near, now).unwrap();
        let far = JobBuilder::new("ping", "q")
            .scheduled_at(Timestamp(now.0 + 400 * day))
            .build();
        let e = l.check_at(&far, now).unwrap_err();
        assert_eq!(e.field(), "scheduled_at");
        assert!(e.to_string().contains("365.0 days"), "{e}");
    }

    #[test]
    fn json_len_is_the_encoded_length() {
        let v = json!({"a": [1, "two", null], "b": "é"});
        assert_eq!(
            json_len(&v),
            serde_json::to_string(&v).unwrap().len() as u64
        );
    }
}
