//! The Lua scripts, loaded once per process. `redis::Script` sends EVALSHA and reloads the source
//! after a NOSCRIPT reply (a restarted Redis has an empty script cache). Each script is sent with
//! `scripts/lib.lua` in front of it: the checks that keep a script from half-applying; the
//! scripts of one string or log key outside any queue (gates, cron marks, rate logs) go alone.
use redis::Script;
use std::sync::LazyLock;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/lib.lua"),
                include_str!(concat!("scripts/", $file))
            ))
        });
    };
}

/// A script sent without `lib.lua` (it touches no queue structure).
macro_rules! plain_script {
    ($name:ident, $file:literal) => {
        pub static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("scripts/", $file))));
    };
}

script!(ENQUEUE, "enqueue.lua");
script!(FETCH, "fetch.lua");
script!(FINISH, "finish.lua");
script!(HEARTBEAT, "heartbeat.lua");
script!(RESCUE, "rescue.lua");
script!(CANCEL, "cancel.lua");
script!(REPLAY, "replay.lua");
script!(PURGE, "purge.lua");
script!(TRIM, "trim.lua");
script!(STATS, "stats.lua");
script!(PROGRESS, "progress.lua");
script!(SWEEP, "sweep.lua");
plain_script!(GATE_RELEASE, "gate_release.lua");
plain_script!(CRON_ADVANCE, "cron_advance.lua");
plain_script!(RATE_TAKE, "rate_take.lua");
