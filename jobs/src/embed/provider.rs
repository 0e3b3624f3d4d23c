//! What every embedding provider is: texts in, one unit vector per text out, with the provider's
//! request limits, and errors that say whether another try can help.
use futures::future::BoxFuture;
use std::time::Duration;

/// The vector space a provider writes into (defined by the store, which keeps spaces apart).
pub use crate::store::vectors::Space;

/// How much one provider request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Inputs per request (OpenAI: 2048).
    pub max_inputs: usize,
    /// Tokens per request, all inputs together (OpenAI: 300,000).
    pub max_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// Worth another try (429, 5xx, timeouts, connection errors), after `retry_after` when the
    /// provider said so.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will never succeed as sent (any other 4xx, a malformed answer): the provider's message.
    #[error("{0}")]
    Final(String),
}

impl ProviderError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }
}

pub trait Provider: Send + Sync {
    fn space(&self) -> &Space;
    fn limits(&self) -> RequestLimits;
    /// Tokens `text` costs in the provider's tokenizer (batching and rate limits count these).
    fn count_tokens(&self, text: &str) -> usize;
    /// One request: a unit vector of `space().dimensions` per text, in order.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, ProviderError>>;
    /// A key naming the account whose limits apply (shared by every process using it).
    fn limit_key(&self) -> String;
}

/// Group inputs (by their token counts) into requests within `limits`, keeping their order.
/// An input over the token limit alone goes alone (the provider's answer then names it).
pub fn plan_requests(tokens: &[usize], limits: RequestLimits) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut sum) = (0, 0usize);
    for (i, &t) in tokens.iter().enumerate() {
        let full =
            i - start >= limits.max_inputs.max(1) || (i > start && sum + t > limits.max_tokens);
        if full {
            out.push(start..i);
            (start, sum) = (i, 0);
        }
        sum += t;
    }
    if start < tokens.len() {
        out.push(start..tokens.len());
    }
    out
}

/// Scale a vector to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_respect_both_limits_and_order() {
        let limits = RequestLimits {
            max_inputs: 3,
            max_tokens: 10,
        };
        assert_eq!(
            plan_requests(&[1, 1, 1, 1, 9, 2, 20, 1], limits),
            vec![0..3, 3..5, 5..6, 6..7, 7..8]
        );
        assert_eq!(plan_requests(&[5, 5, 5], limits), vec![0..2, 2..3]);
        assert!(plan_requests(&[], limits).is_empty());
    }
}
