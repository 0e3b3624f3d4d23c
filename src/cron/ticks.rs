//! When a schedule fires: the ticks of a cron expression read as local wall-clock times in a
//! timezone, across daylight-saving changes (a skipped local time does not fire, a repeated one
//! fires once unless the hour field repeats). Pure functions of the expression and an instant.
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

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
