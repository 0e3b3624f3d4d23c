//! The retry policy: a pure function from the failed attempt number to the wait before the next.
//!
//! Default = Chatter's `min(60 s · 2^(n-1), 1 h)` plus up to 10 % jitter, so retries of jobs that
//! failed together (a provider outage) do not return together. Per job kind it can be overridden
//! in the configuration; a job's own `retry_delay` sets the base when the kind does not.
use rand::Rng;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Wait before the first retry, seconds.
    #[serde(default = "defaults::base")]
    pub base_secs: f64,
    /// Each further retry waits this many times longer.
    #[serde(default = "defaults::factor")]
    pub factor: f64,
    /// No wait is longer than this (before jitter), seconds.
    #[serde(default = "defaults::cap")]
    pub cap_secs: f64,
    /// Up to this fraction of the wait is added at random (0.1 = up to +10 %).
    #[serde(default = "defaults::jitter")]
    pub jitter: f64,
}

mod defaults {
    pub fn base() -> f64 {
        60.0
    }
    pub fn factor() -> f64 {
        2.0
    }
    pub fn cap() -> f64 {
        3600.0
    }
    pub fn jitter() -> f64 {
        0.1
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_secs: defaults::base(),
            factor: defaults::factor(),
            cap_secs: defaults::cap(),
            jitter: defaults::jitter(),
        }
    }
}

impl RetryPolicy {
    /// Chatter's default with a job's own `retry_delay` as the base.
    pub fn with_base(base_secs: u64) -> Self {
        Self {
            base_secs: base_secs as f64,
            ..Self::default()
        }
    }
}

/// The wait before retry number `attempt` (1 = the first retry, after the first failure).
///
/// With the default policy, before jitter: 60 s, 120 s, 240 s, 480 s, 960 s, 1920 s, then 3600 s
/// for every later retry; jitter adds up to 10 % on top. Deterministic for a seeded `rng`.
pub fn delay(attempt: u32, policy: &RetryPolicy, rng: &mut impl Rng) -> Duration {
    let exp = attempt.saturating_sub(1).min(64) as i32;
    let raw = (policy.base_secs * policy.factor.powi(exp))
        .min(policy.cap_secs)
        .max(0.0);
    let jitter = if policy.jitter > 0.0 {
        rng.random_range(0.0..=policy.jitter)
    } else {
        0.0
    };
    Duration::from_secs_f64(raw * (1.0 + jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn default_policy_is_chatters_with_bounded_jitter() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        let expected = [60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0, 3600.0];
        for (i, base) in expected.iter().enumerate() {
            let d = delay(i as u32 + 1, &p, &mut rng).as_secs_f64();
            assert!(
                d >= *base && d <= base * 1.1,
                "retry {}: {d} not in [{base}, {}]",
                i + 1,
                base * 1.1
            );
        }
    }

    #[test]
    fn seeded_jitter_is_reproducible() {
        let p = RetryPolicy::default();
        let a: Vec<_> = (1..6)
            .map(|n| delay(n, &p, &mut StdRng::seed_from_u64(42)))
            .collect();
        let b: Vec<_> = (1..6)
            .map(|n| delay(n, &p, &mut StdRng::seed_from_u64(42)))
            .collect();
        assert_eq!(a, b);
        let no_jitter = RetryPolicy { jitter: 0.0, ..p };
        assert_eq!(
            delay(3, &no_jitter, &mut StdRng::seed_from_u64(1)),
            Duration::from_secs(240)
        );
    }
}
