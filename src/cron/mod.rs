//! Cron schedules that fire exactly once per tick however many processes run them.
//!
//! `schedule` reads and checks the schedules file, `ticks` finds a schedule's ticks in its
//! timezone, `catch_up` decides which ticks a pass owes (missed ones by the schedule's policy),
//! and `scheduler` is the loop every `run` process runs: it claims each owed tick through the
//! backend's [`CronGate`](crate::backend::CronGate), so a tick is enqueued once.
mod catch_up;
pub mod schedule;
pub mod scheduler;
pub mod ticks;

pub use schedule::{CatchUp, Schedule, ScheduleError, ScheduleSpec, load, load_with};
pub use scheduler::{PassReport, Scheduler};
pub use ticks::{next_after, prev_at_or_before};

/// How long a process's claim on a tick holds before another may take it over.
pub const CLAIM_SECS: u64 = 10;

/// The shortest grace period: a claim plus a few polls.
pub const MIN_GRACE_SECS: u64 = CLAIM_SECS + 5;
