//! Which ticks one pass owes a schedule, from its last fire and the time: the ticks within the
//! grace period are due; older ones were missed (every process was down) and follow the
//! schedule's policy: `skip` drops them, `once` fires one job for the newest of them. Only the
//! newest missed tick is ever looked at, so a pass stays bounded however long the downtime.
use super::schedule::{CatchUp, Schedule};
use chrono::{DateTime, Utc};

/// Most due ticks one pass enqueues for a schedule (the rest, next pass).
const MAX_DUE: usize = 1000;

/// What a pass should do for one schedule.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// The ticks to enqueue, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// A missed tick dropped by the `skip` policy: settled without a job.
    pub dropped: Option<DateTime<Utc>>,
}

/// The plan at `now` for schedule `s` last fired (or passed) at `last`.
pub(super) fn plan(s: &Schedule, last: DateTime<Utc>, now: DateTime<Utc>) -> Plan {
    // Ticks up to `horizon` are missed.
    let horizon = now
        - chrono::Duration::seconds(s.spec.grace_secs as i64)
        - chrono::Duration::milliseconds(1);
    let newest_missed = s.prev_at_or_before(horizon).filter(|t| *t > last);
    let due = s.ticks_between(last.max(horizon), now, MAX_DUE);
    let mut plan = Plan::default();
    if let Some(m) = newest_missed {
        tracing::warn!(schedule = %s.spec.name, newest_missed = %m, policy = ?s.spec.catch_up, "missed ticks");
        match s.spec.catch_up {
            CatchUp::Skip => plan.dropped = Some(m),
            CatchUp::Once => plan.fire.push(m),
        }
    }
    plan.fire.extend(due);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cron::ScheduleSpec;
    use chrono::TimeZone;

    fn every_second(catch_up: CatchUp) -> Schedule {
        let spec = ScheduleSpec {
            name: "s".into(),
            cron: "* * * * * *".into(),
            timezone: "UTC".into(),
            kind: "ping".into(),
            args: Default::default(),
            priority: chatter_jobs::Priority::Normal,
            max_retries: 0,
            timeout_secs: 60,
            catch_up,
            grace_secs: 15,
            enabled: true,
        };
        Schedule::parse(spec, &chatter_jobs::Registry::builtin()).unwrap()
    }

    #[test]
    fn ticks_within_the_grace_are_due_and_older_ones_follow_the_policy() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        // Within the grace: every tick after the last fire, nothing missed.
        let p = plan(&every_second(CatchUp::Skip), t0, at(3));
        assert_eq!(p.fire, [at(1), at(2), at(3)]);
        assert_eq!(p.dropped, None);
        // Down until 40 s: ticks up to 24 s are past the 15 s grace.
        let skip = plan(&every_second(CatchUp::Skip), at(3), at(40));
        assert_eq!(skip.fire, (25..=40).map(at).collect::<Vec<_>>());
        assert_eq!(skip.dropped, Some(at(24)));
        let once = plan(&every_second(CatchUp::Once), at(3), at(40));
        assert_eq!(once.fire, (24..=40).map(at).collect::<Vec<_>>());
        assert_eq!(once.dropped, None);
    }
}
