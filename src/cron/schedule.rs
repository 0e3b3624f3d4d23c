//! A schedule as written in the schedules file (`jobs/schedules.toml`) and as checked: a cron
//! expression with seconds, an IANA timezone, a job kind with its arguments, priority, retries
//! and timeout, a catch-up policy and a grace period. [`load`] reads and checks a file, naming
//! the schedule and the field of the first mistake; a [`Schedule`] hands the scheduler its
//! ticks (`super::ticks`) and the job a tick enqueues.
use super::MIN_GRACE_SECS;
use super::ticks::{next_after, prev_at_or_before};
use chatter_jobs::{JobBuilder, Priority, Registry};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Missed ticks are dropped.
    Skip,
    /// Missed ticks are coalesced into one job (the newest missed tick).
    Once,
}

/// One schedule as written in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub name: String,
    /// `sec min hour day-of-month month day-of-week [year]`; a 5-field expression gets second 0.
    pub cron: String,
    #[serde(default = "utc")]
    pub timezone: String,
    pub kind: String,
    #[serde(default)]
    pub args: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "normal")]
    pub priority: Priority,
    #[serde(default = "three")]
    pub max_retries: u32,
    #[serde(default = "hour")]
    pub timeout_secs: u64,
    #[serde(default = "skip")]
    pub catch_up: CatchUp,
    /// A tick fired at most this late is on time; older ones were missed (Chatter: 300 s).
    #[serde(default = "grace")]
    pub grace_secs: u64,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn utc() -> String {
    "UTC".into()
}
fn normal() -> Priority {
    Priority::Normal
}
fn three() -> u32 {
    3
}
fn hour() -> u64 {
    3600
}
fn skip() -> CatchUp {
    CatchUp::Skip
}
fn grace() -> u64 {
    300
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "schedule")]
    schedules: Vec<ScheduleSpec>,
}

/// A checked schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub spec: ScheduleSpec,
    pub cron: cron::Schedule,
    pub tz: Tz,
    pub queue: String,
    /// The hour field repeats (see [`next_after`]).
    pub every_hour: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("schedule {name:?}: {field}: {message}")]
pub struct ScheduleError {
    pub name: String,
    pub field: String,
    pub message: String,
}

impl Schedule {
    /// Check a schedule, its job against the default job limits.
    pub fn parse(spec: ScheduleSpec, registry: &Registry) -> Result<Self, ScheduleError> {
        Self::parse_with(spec, registry, &chatter_jobs::JobLimits::default())
    }

    /// Check a schedule; the job a tick enqueues is checked as any producer's is, against
    /// `limits` (the configured `[limits]`).
    pub fn parse_with(
        spec: ScheduleSpec,
        registry: &Registry,
        limits: &chatter_jobs::JobLimits,
    ) -> Result<Self, ScheduleError> {
        let name = spec.name.clone();
        let err = |field: &str, message: String| ScheduleError {
            name: name.clone(),
            field: field.into(),
            message,
        };
        if spec.name.is_empty()
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(err("name", "letters, digits, _ - . only".into()));
        }
        let fields = spec.cron.split_whitespace().count();
        let expr = if fields == 5 {
            format!("0 {}", spec.cron)
        } else {
            spec.cron.clone()
        };
        let cron = cron::Schedule::from_str(&expr)
            .map_err(|e| err("cron", format!("{:?}: {e}", spec.cron)))?;
        let tz: Tz = spec.timezone.parse().map_err(|_| {
            err(
                "timezone",
                format!("{:?} is not an IANA timezone", spec.timezone),
            )
        })?;
        let kind = registry
            .resolve(&spec.kind)
            .map_err(|e| err("kind", e.to_string()))?;
        if spec.max_retries > 10 {
            return Err(err(
                "max_retries",
                format!("{} is outside 0..=10", spec.max_retries),
            ));
        }
        if spec.timeout_secs == 0 {
            return Err(err("timeout_secs", "must be at least 1".into()));
        }
        // Longer than a claim (a dead claimer's tick is still on time when another takes it
        // over), at most a week.
        if !(MIN_GRACE_SECS..=7 * 86_400).contains(&spec.grace_secs) {
            return Err(err(
                "grace_secs",
                format!("{} is outside {MIN_GRACE_SECS}..=604800", spec.grace_secs),
            ));
        }
        let queue = kind.queue.clone();
        let every_hour = hour_repeats(&expr);
        let s = Self {
            spec,
            cron,
            tz,
            queue,
            every_hour,
        };
        if s.next_after(Utc::now()).is_none() {
            return Err(err("cron", format!("{:?} never fires", s.spec.cron)));
        }
        // The job a tick enqueues is checked like any producer's (crate::submit), once, here.
        let job = s.job(Utc::now()).build();
        crate::submit::check_job(registry, limits, &job, 0, job.created_at).map_err(
            |e| match e {
                crate::submit::SubmitError::UnknownKind(e) => err("kind", e.to_string()),
                crate::submit::SubmitError::Args { message, .. } => err("args", message),
                other => err("args", other.to_string()),
            },
        )?;
        Ok(s)
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        next_after(&self.cron, self.tz, self.every_hour, t)
    }

    /// The ticks in `(from, to]`, oldest first, at most `limit` of them.
    pub fn ticks_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = from;
        while out.len() < limit
            && let Some(n) = self.next_after(t).filter(|n| *n <= to)
        {
            out.push(n);
            t = n;
        }
        out
    }

    /// The newest tick at or before `t`.
    pub fn prev_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        prev_at_or_before(&self.cron, self.tz, self.every_hour, t)
    }

    /// The job a tick enqueues.
    pub fn job(&self, tick: DateTime<Utc>) -> JobBuilder {
        JobBuilder::new(&self.spec.kind, &self.queue)
            .name(format!("{}@{}", self.spec.name, tick.to_rfc3339()))
            .kwargs(self.spec.args.clone())
            .priority(self.spec.priority)
            .max_retries(self.spec.max_retries)
            .timeout(self.spec.timeout_secs)
            .idempotency_key(format!(
                "cron:{}:{}",
                self.spec.name,
                tick.timestamp_millis()
            ))
    }
}

/// Whether the hour field (third of the six or seven) is anything but one fixed hour.
fn hour_repeats(expr: &str) -> bool {
    expr.split_whitespace()
        .nth(2)
        .is_some_and(|h| h.contains(['*', '/', ',', '-']))
}

/// Read and check a schedules file against the default job limits.
pub fn load(path: &Path, registry: &Registry) -> Result<Vec<Schedule>, String> {
    load_with(path, registry, &chatter_jobs::JobLimits::default())
}

/// Read and check a schedules file, the ticks' jobs against `limits` (the configured
/// `[limits]`). Disabled schedules are kept (listed) but never fire.
pub fn load_with(
    path: &Path,
    registry: &Registry,
    limits: &chatter_jobs::JobLimits,
) -> Result<Vec<Schedule>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read schedules file {}: {e}", path.display()))?;
    let file: File =
        toml::from_str(&text).map_err(|e| format!("schedules file {}: {e}", path.display()))?;
    let mut names = BTreeMap::new();
    let mut out = Vec::new();
    for spec in file.schedules {
        if names.insert(spec.name.clone(), ()).is_some() {
            return Err(format!(
                "schedules file {}: schedule {:?}: name: used twice",
                path.display(),
                spec.name
            ));
        }
        out.push(
            Schedule::parse_with(spec, registry, limits)
                .map_err(|e| format!("schedules file {}: {e}", path.display()))?,
        );
    }
    Ok(out)
}
