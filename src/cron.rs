//! Cron schedules that fire exactly once per tick however many processes run them.
//!
//! Schedules come from a TOML file (`jobs/schedules.toml`): a cron expression with seconds, an
//! IANA timezone (daylight-saving changes follow it), a job kind with its arguments, priority,
//! retries and timeout, a catch-up policy and a grace period. Every `run` process runs the
//! [`Scheduler`]: each pass looks at the ticks since the schedule's last fire (kept in Redis,
//! shared by all processes), and a tick is enqueued only by the process whose
//! `SET <prefix>:cron:<name>:<tick> NX` wins; the tick is also the job's idempotency key. The
//! gate holds `claimed` (briefly) then `done`: the last fire only moves past a tick that is
//! done, so a process dying between its claim and its enqueue leaves the tick to another.
//! Ticks older than the grace period were missed (every process was down): `skip` drops them,
//! `once` fires one job for the newest of them.
use crate::queue::{self, QueueOptions, RedisQueue};
use chatter_jobs::{JobBuilder, Priority, Registry};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use redis::aio::ConnectionManager;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    pub fn parse(spec: ScheduleSpec, registry: &Registry) -> Result<Self, ScheduleError> {
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
        // The arguments are checked like any producer's.
        (registry
            .resolve(&s.spec.kind)
            .map_err(|e| err("kind", e.to_string()))?
            .check)(&s.job(Utc::now()).build())
        .map_err(|e| err("args", e))?;
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

/// No change of UTC offset within `window` either side of `t`.
fn quiet(tz: Tz, t: DateTime<Utc>, window: chrono::Duration) -> bool {
    use chrono::Offset;
    let offset = |x: DateTime<Utc>| x.with_timezone(&tz).offset().fix().local_minus_utc();
    offset(t - window) == offset(t) && offset(t) == offset(t + window)
}

/// The instants a local wall-clock time stands for: none in a skipped hour, the first of a
/// repeated one (both when the schedule's hour field repeats).
fn instants(tz: Tz, naive: chrono::NaiveDateTime, every_hour: bool) -> Vec<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&naive) {
        LocalResult::None => Vec::new(),
        LocalResult::Single(x) => vec![x.with_timezone(&Utc)],
        LocalResult::Ambiguous(a, b) if every_hour => {
            vec![a.with_timezone(&Utc), b.with_timezone(&Utc)]
        }
        LocalResult::Ambiguous(a, _) => vec![a.with_timezone(&Utc)],
    }
}

/// The first tick of `cron` in timezone `tz` strictly after `t`. The expression matches local
/// wall-clock times: one that does not exist (the hour skipped when clocks go forward) does not
/// fire; one that happens twice (the hour repeated when clocks go back) fires once, at its first
/// occurrence, unless the expression's hour field repeats (`*`, `*/n`, a list or range: an
/// every-minute schedule keeps firing through the repeated hour, like Vixie cron).
pub fn next_after(
    cron: &cron::Schedule,
    tz: Tz,
    every_hour: bool,
    t: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let window = chrono::Duration::hours(3);
    // Near a transition a later local time can map to an earlier instant: look from a little
    // earlier and keep the smallest instant after `t`.
    let quiet = quiet(tz, t, window);
    let local = t.with_timezone(&tz).naive_local();
    let from = if quiet { local } else { local - window };
    let mut best: Option<DateTime<Utc>> = None;
    for cand in cron.after(&Utc.from_utc_datetime(&from)).take(1_000_000) {
        let naive = cand.naive_utc();
        if let Some(b) = best
            && naive > b.with_timezone(&tz).naive_local() + window
        {
            break;
        }
        let instants = instants(tz, naive, every_hour);
        for i in instants.into_iter().filter(|i| *i > t) {
            if best.is_none_or(|b| i < b) {
                best = Some(i);
            }
        }
        if quiet && best.is_some() {
            break;
        }
    }
    best
}

/// The newest tick at or before `t` (the mirror of [`next_after`]).
pub fn prev_at_or_before(
    cron: &cron::Schedule,
    tz: Tz,
    every_hour: bool,
    t: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let window = chrono::Duration::hours(3);
    let quiet = quiet(tz, t, window);
    let local = t.with_timezone(&tz).naive_local();
    // Candidates at or before `from` (the iterator starts strictly before it).
    let from = local
        + if quiet {
            chrono::Duration::milliseconds(1)
        } else {
            window
        };
    let mut best: Option<DateTime<Utc>> = None;
    for cand in cron
        .after(&Utc.from_utc_datetime(&from))
        .rev()
        .take(1_000_000)
    {
        let naive = cand.naive_utc();
        if let Some(b) = best
            && naive < b.with_timezone(&tz).naive_local() - window
        {
            break;
        }
        let instants = instants(tz, naive, every_hour);
        for i in instants.into_iter().filter(|i| *i <= t) {
            if best.is_none_or(|b| i > b) {
                best = Some(i);
            }
        }
        if quiet && best.is_some() {
            break;
        }
    }
    best
}

/// Whether the hour field (third of the six or seven) is anything but one fixed hour.
fn hour_repeats(expr: &str) -> bool {
    expr.split_whitespace()
        .nth(2)
        .is_some_and(|h| h.contains(['*', '/', ',', '-']))
}

/// Read and check a schedules file. Disabled schedules are kept (listed) but never fire.
pub fn load(path: &Path, registry: &Registry) -> Result<Vec<Schedule>, String> {
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
            Schedule::parse(spec, registry)
                .map_err(|e| format!("schedules file {}: {e}", path.display()))?,
        );
    }
    Ok(out)
}

fn last_key(prefix: &str, name: &str) -> String {
    format!("{prefix}:cron:{name}:last")
}

/// How long a process's claim on a tick holds before another may take it over.
pub const CLAIM_SECS: u64 = 10;

/// The shortest grace period: a claim plus a few polls.
pub const MIN_GRACE_SECS: u64 = CLAIM_SECS + 5;

/// Most due ticks one pass enqueues for a schedule (the rest, next pass).
const MAX_DUE: usize = 1000;

/// Deletes the key if it still holds the value (a claim given back by its owner only).
const DEL_IF: &str = r"
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then return 0 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// The time on the Redis server.
pub async fn redis_now(conn: &mut ConnectionManager) -> queue::Result<DateTime<Utc>> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(Utc
        .timestamp_opt(secs, (micros * 1000) as u32)
        .single()
        .unwrap_or_else(Utc::now))
}

pub fn gate_key(prefix: &str, name: &str, tick_ms: i64) -> String {
    format!("{prefix}:cron:{name}:{tick_ms}")
}

/// Sets the key to the number if it is larger (the schedule's last fired tick only moves on).
/// A key that is not a number (of another type, or text) is replaced: it only remembers a tick,
/// and a stuck key would stop the schedule for good.
const SET_MAX: &str = r"
local cur = -1
if redis.call('TYPE', KEYS[1])['ok'] == 'string' then
  cur = tonumber(redis.call('GET', KEYS[1])) or -1
else
  redis.call('DEL', KEYS[1])
end
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 0";

/// The schedule's last fired (or passed) tick, ms since the epoch.
pub async fn last_fire(
    conn: &mut ConnectionManager,
    prefix: &str,
    name: &str,
) -> queue::Result<Option<i64>> {
    // A key of another type or not a number reads as never fired (SET_MAX replaces it), so a
    // damaged key costs at most one catch-up instead of stopping the schedule.
    let v: redis::Value = redis::cmd("GET")
        .arg(last_key(prefix, name))
        .query_async(conn)
        .await
        .or_else(|e| match e.code() {
            Some("WRONGTYPE") => Ok(redis::Value::Nil),
            _ => Err(e),
        })?;
    Ok(match v {
        redis::Value::BulkString(b) => std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()),
        _ => None,
    })
}

pub struct Scheduler {
    pub schedules: Vec<Schedule>,
    pub conn: ConnectionManager,
    pub prefix: String,
    pub options: QueueOptions,
    /// How often ticks are looked for.
    pub poll: Duration,
    /// This process's mark on the ticks it claims.
    pub token: String,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// (schedule, tick ms) this process enqueued.
    pub fired: Vec<(String, i64)>,
}

impl Scheduler {
    /// Look at every enabled schedule once, at time `now`. A schedule whose Redis calls fail is
    /// logged and left to the next pass; the others go on.
    pub async fn pass(&mut self, now: DateTime<Utc>) -> queue::Result<PassReport> {
        let mut report = PassReport::default();
        let mut first_error = None;
        for s in self.schedules.iter().filter(|s| s.spec.enabled) {
            if let Err(e) = self.schedule_pass(s, now, &mut report).await {
                tracing::warn!(schedule = %s.spec.name, error = %e, "schedule pass failed; next pass retries");
                first_error.get_or_insert(e);
            }
            if let Some(next) = s.next_after(now) {
                metrics::gauge!("chatter_cron_next_fire_timestamp_seconds", "schedule" => s.spec.name.clone())
                    .set(next.timestamp() as f64);
            }
        }
        match first_error {
            Some(e) if report.fired.is_empty() => Err(e),
            _ => Ok(report),
        }
    }

    async fn schedule_pass(
        &self,
        s: &Schedule,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> queue::Result<()> {
        let name = &s.spec.name;
        let mut conn = self.conn.clone();
        let last = last_fire(&mut conn, &self.prefix, name).await?;
        let Some(last) = last.and_then(|ms| Utc.timestamp_millis_opt(ms).single()) else {
            // First sight of the schedule: it starts now (nothing before it is owed).
            set_last(&mut conn, &self.prefix, name, now.timestamp_millis()).await?;
            return Ok(());
        };
        // Ticks up to `horizon` are missed; only the newest of them matters (for `once`), so
        // the work of a pass stays bounded by the grace period however long the downtime.
        let horizon = now
            - chrono::Duration::seconds(s.spec.grace_secs as i64)
            - chrono::Duration::milliseconds(1);
        let newest_missed = s.prev_at_or_before(horizon).filter(|t| *t > last);
        let due = s.ticks_between(last.max(horizon), now, MAX_DUE);
        let mut fire: Vec<DateTime<Utc>> = Vec::new();
        // The newest tick known to be settled: enqueued (here or elsewhere) or dropped.
        let mut settled = None;
        if let Some(m) = newest_missed {
            tracing::warn!(schedule = %name, newest_missed = %m, policy = ?s.spec.catch_up, "missed ticks");
            match s.spec.catch_up {
                CatchUp::Skip => settled = Some(m),
                CatchUp::Once => fire.push(m),
            }
        }
        fire.extend(due);
        let q = RedisQueue::new(
            self.conn.clone(),
            &self.prefix,
            &s.queue,
            self.options.clone(),
        );
        let token = format!("claimed:{}", self.token);
        let result = async {
            for tick in fire {
                let ms = tick.timestamp_millis();
                let gate = gate_key(&self.prefix, name, ms);
                // A short claim first: if this process dies before enqueueing, the claim
                // expires and another process enqueues the tick (the job's idempotency key
                // keeps it to one job either way).
                let won: Option<String> = redis::cmd("SET")
                    .arg(&gate)
                    .arg(&token)
                    .arg("NX")
                    .arg("EX")
                    .arg(CLAIM_SECS)
                    .query_async(&mut conn)
                    .await?;
                if won.is_none() {
                    let state: Option<String> =
                        redis::cmd("GET").arg(&gate).query_async(&mut conn).await?;
                    if state.as_deref() == Some("done") {
                        settled = Some(tick);
                        continue;
                    }
                    // Another process is enqueueing it: look again next pass.
                    break;
                }
                let created = match q.enqueue(&s.job(tick).build()).await {
                    Ok(r) => r.created,
                    Err(e) => {
                        // Give the tick back at once rather than after the claim expires.
                        let _: Result<i64, _> = redis::Script::new(DEL_IF)
                            .key(&gate)
                            .arg(&token)
                            .invoke_async(&mut conn)
                            .await;
                        return Err(e);
                    }
                };
                let _: () = redis::cmd("SET")
                    .arg(&gate)
                    .arg("done")
                    .arg("EX")
                    .arg((s.spec.grace_secs + 3600) as i64)
                    .query_async(&mut conn)
                    .await?;
                settled = Some(tick);
                if created {
                    let lag = (now - tick).num_milliseconds().max(0) as f64 / 1000.0;
                    metrics::counter!("chatter_cron_fires_total", "schedule" => name.clone())
                        .increment(1);
                    metrics::histogram!("chatter_cron_lag_seconds", "schedule" => name.clone())
                        .record(lag);
                    report.fired.push((name.clone(), ms));
                }
            }
            Ok(())
        }
        .await;
        // What was settled counts even when a later tick failed.
        if let Some(t) = settled {
            set_last(&mut conn, &self.prefix, name, t.timestamp_millis()).await?;
        }
        result
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut retry = queue::backoff();
        loop {
            // Redis's clock, shared by every process: a machine with a skewed clock neither
            // fires early nor marks ticks missed.
            let now = match redis_now(&mut self.conn.clone()).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler cannot read the Redis clock; retrying");
                    Utc::now()
                }
            };
            let wait = match self.pass(now).await {
                Ok(_) => {
                    retry = queue::backoff();
                    self.poll
                }
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler pass failed; retrying");
                    retry.next().unwrap_or(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

async fn set_last(
    conn: &mut ConnectionManager,
    prefix: &str,
    name: &str,
    ms: i64,
) -> queue::Result<()> {
    let _: i64 = redis::Script::new(SET_MAX)
        .key(last_key(prefix, name))
        .arg(ms)
        .invoke_async(conn)
        .await?;
    Ok(())
}
