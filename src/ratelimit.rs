//! The Redis [`RateLimiter`]: a sliding-window log per provider account, shared by every process
//! on the Redis. A request is granted only when the requests and the tokens granted in the last
//! window, plus it, fit the limits; otherwise the answer is how long until enough of the window's
//! oldest grants leave it. The window is on Redis's clock, so process clocks do not matter, and
//! no window of that length ever holds more than the limits (a fixed-window counter would allow
//! twice the limit across a boundary).
use chatter_jobs::embed::limiter::{LimitError, RateLimiter};
use futures::future::BoxFuture;
use redis::aio::ConnectionManager;
use std::time::Duration;

/// KEYS: the log (zset of `id:tokens` by grant time, ms).
/// ARGV: window ms, max requests (0 = none), max tokens (0 = none), this request's tokens, an id.
/// Returns 0 when granted, -1 when the request can never fit, else the wait in ms. The tokens in
/// the window are summed from the log itself on every call (at most one entry per request in
/// the window), so no second key can drift from it.
const TAKE: &str = r#"
-- The log is only a window of grants: one of another type is replaced rather than left to fail
-- every call (the limit forgets at most one window).
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then redis.call('DEL', KEYS[1]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, maxr, maxt, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if maxt > 0 and cost > maxt then return -1 end
local function tokens(member) return tonumber(string.match(member, ':(%d+)$')) or 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local count = #entries / 2
local wait = 0
if maxr > 0 and count + 1 > maxr then
  -- the (count + 1 - maxr)-th oldest grant must leave the window first
  wait = math.max(wait, tonumber(entries[(count - maxr) * 2 + 2]) + window - now + 1)
end
if maxt > 0 then
  local used = 0
  for i = 1, #entries, 2 do used = used + tokens(entries[i]) end
  if used + cost > maxt then
    local need, freed, found = used + cost - maxt, 0, false
    for i = 1, #entries, 2 do
      freed = freed + tokens(entries[i])
      if freed >= need then
        wait = math.max(wait, tonumber(entries[i + 1]) + window - now + 1)
        found = true
        break
      end
    end
    if not found then wait = math.max(wait, window) end
  end
end
if wait == 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. cost)
end
redis.call('PEXPIRE', KEYS[1], window * 2)
return wait
"#;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub window: Duration,
    /// Requests per window (None: no request limit).
    pub requests: Option<u64>,
    /// Tokens per window (None: no token limit).
    pub tokens: Option<u64>,
}

#[derive(Clone)]
pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    limits: Limits,
    script: redis::Script,
}

impl RedisLimiter {
    pub fn new(conn: ConnectionManager, prefix: &str, limits: Limits) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
            limits,
            script: redis::Script::new(TAKE),
        }
    }
}

impl RateLimiter for RedisLimiter {
    fn try_take<'a>(
        &'a self,
        key: &'a str,
        tokens: u64,
    ) -> BoxFuture<'a, Result<Option<Duration>, LimitError>> {
        Box::pin(async move {
            let l = self.limits;
            if l.requests.is_none() && l.tokens.is_none() {
                return Ok(None);
            }
            let base = format!("{}:ratelimit:{{{key}}}", self.prefix);
            let wait: i64 = self
                .script
                .key(format!("{base}:log"))
                .arg(l.window.as_millis().max(1) as u64)
                .arg(l.requests.unwrap_or(0))
                .arg(l.tokens.unwrap_or(0))
                .arg(tokens)
                .arg(ulid::Ulid::new().to_string())
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| LimitError::Unavailable(e.to_string()))?;
            match wait {
                0 => Ok(None),
                w if w < 0 => Err(LimitError::TooLarge(format!(
                    "one request of {tokens} tokens is over the limit of {} tokens per {:?}",
                    l.tokens.unwrap_or(0),
                    l.window
                ))),
                w => Ok(Some(Duration::from_millis(w as u64))),
            }
        })
    }
}
