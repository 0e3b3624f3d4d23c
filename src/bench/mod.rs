//! Benchmarks: `queue` (no-op jobs through our Redis queue and apalis-redis) and `chunking`
//! (extraction and splitting of real text, with langchain-text-splitters).
pub mod chunking;
pub mod embedding;
pub mod queue;

pub use queue::{BenchOptions, BenchReport, SystemResult, run};
