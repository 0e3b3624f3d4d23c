//! The arithmetic of the embedded exact search: vectors to and from their BLOBs (little-endian
//! f32), pgvector's cosine distance, the `halfvec` rounding pgvector applies to spaces above
//! 2,000 dimensions before comparing, and the top k of a scan.
//!
//! pgvector computes `<=>` as `1 - dot / sqrt(|a|² |b|²)`, clamped to [-1, 1] before the
//! subtraction (NaN for a zero vector), and orders ascending with NaN last; search reports
//! `1 - distance`. The same here, summed in f64 (pgvector sums in f32 in an order of its
//! compiler's choosing, so scores agree to about 1e-6 and orders agree except for such ties).
use std::cmp::Ordering;

/// A vector as stored.
pub(super) fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector read back, when it has exactly `dims` values.
pub(super) fn from_blob(b: &[u8], dims: usize) -> Option<Vec<f32>> {
    if b.len() != dims * 4 {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// `x` rounded to the nearest IEEE half (ties to even) and widened back, as pgvector's cast to
/// `halfvec` does; None when it overflows half's range (pgvector refuses such a value).
pub(super) fn to_half(x: f32) -> Option<f32> {
    if !x.is_finite() {
        return Some(x);
    }
    let a = x.abs();
    // Below 2^-14 halves are subnormal, spaced 2^-24 apart; above, 11 significant bits.
    let quantum = if a < f32::powi(2.0, -14) {
        f32::powi(2.0, -24)
    } else {
        let exponent = ((a.to_bits() >> 23) & 0xff) as i32 - 127;
        f32::powi(2.0, exponent - 10)
    };
    let r = (a / quantum).round_ties_even() * quantum;
    (r <= 65504.0).then_some(r.copysign(x))
}

/// A vector as pgvector compares it in a space of `dims` dimensions (`halfvec` above 2,000).
pub(super) fn as_compared(v: &[f32], dims: usize) -> Option<Vec<f32>> {
    if dims > HALFVEC_ABOVE {
        v.iter().map(|x| to_half(*x)).collect()
    } else {
        Some(v.to_vec())
    }
}

/// The dimensions above which pgvector indexes (and search compares) the `halfvec` cast.
const HALFVEC_ABOVE: usize = 2000;

/// pgvector's cosine distance of two vectors of the same length.
pub(super) fn distance(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    // Clamped like pgvector's (a NaN stays NaN: a zero vector has no direction).
    let similarity = (dot / (na * nb).sqrt()).clamp(-1.0, 1.0);
    1.0 - similarity
}

/// Ascending distance, NaN last (PostgreSQL's order), then id for a stable answer.
fn nearer(a: &(f64, String), b: &(f64, String)) -> Ordering {
    match (a.0.is_nan(), b.0.is_nan()) {
        (false, false) => a.0.total_cmp(&b.0),
        (x, y) => x.cmp(&y),
    }
    .then_with(|| a.1.cmp(&b.1))
}

/// The `k` nearest of scanned `(distance, id)` pairs, nearest first; keeps at most 2k while
/// scanning.
#[derive(Debug)]
pub(super) struct TopK {
    k: usize,
    items: Vec<(f64, String)>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(k.saturating_mul(2).min(4096)),
        }
    }

    pub fn push(&mut self, distance: f64, id: String) {
        if self.k == 0 {
            return;
        }
        self.items.push((distance, id));
        if self.items.len() >= self.k.saturating_mul(2) {
            self.prune();
        }
    }

    fn prune(&mut self) {
        if self.items.len() > self.k {
            self.items.select_nth_unstable_by(self.k - 1, nearer);
            self.items.truncate(self.k);
        }
    }

    pub fn into_sorted(mut self) -> Vec<(f64, String)> {
        self.prune();
        self.items.sort_by(nearer);
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_refuse_a_wrong_length() {
        let v = vec![1.5f32, -0.25, 3.0e-8];
        assert_eq!(from_blob(&to_blob(&v), 3), Some(v.clone()));
        assert_eq!(from_blob(&to_blob(&v), 4), None);
        assert_eq!(from_blob(&[0u8; 5], 1), None);
    }

    #[test]
    fn half_rounding_matches_ieee_half() {
        assert_eq!(to_half(1.0), Some(1.0));
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1).
        assert_eq!(to_half(1.0 + f32::powi(2.0, -11)), Some(1.0));
        assert_eq!(to_half(-0.1), Some(-0.099975586));
        assert_eq!(to_half(65504.0), Some(65504.0));
        assert_eq!(to_half(65519.0), Some(65504.0));
        assert_eq!(to_half(65520.0), None);
        // the smallest subnormal half, and half of it (ties to even: 0)
        assert_eq!(to_half(f32::powi(2.0, -24)), Some(f32::powi(2.0, -24)));
        assert_eq!(to_half(f32::powi(2.0, -25)), Some(0.0));
    }

    #[test]
    fn distance_is_pgvectors() {
        assert_eq!(distance(&[1.0, 0.0], &[2.0, 0.0]), 0.0);
        assert_eq!(distance(&[1.0, 0.0], &[0.0, 3.0]), 1.0);
        assert_eq!(distance(&[1.0, 0.0], &[-1.0, 0.0]), 2.0);
        assert!(distance(&[0.0, 0.0], &[1.0, 0.0]).is_nan());
    }

    #[test]
    fn top_k_keeps_the_nearest_in_order_with_nan_last() {
        let mut t = TopK::new(3);
        for (d, id) in [
            (0.5, "a"),
            (f64::NAN, "n"),
            (0.1, "b"),
            (0.9, "c"),
            (0.3, "d"),
        ] {
            t.push(d, id.into());
        }
        let ids: Vec<String> = t.into_sorted().into_iter().map(|(_, i)| i).collect();
        assert_eq!(ids, ["b", "d", "a"]);
        let mut t = TopK::new(5);
        t.push(f64::NAN, "n".into());
        t.push(0.2, "x".into());
        let ids: Vec<String> = t.into_sorted().into_iter().map(|(_, i)| i).collect();
        assert_eq!(ids, ["x", "n"]);
    }
}
