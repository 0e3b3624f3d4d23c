//! The Lua scripts, loaded once per process. `redis::Script` sends EVALSHA and reloads the source
//! after a NOSCRIPT reply (a restarted Redis has an empty script cache). Each script is sent with
//! `scripts/lib.lua` in front of it: the checks that keep a script from half-applying.
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
