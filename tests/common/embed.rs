//! Embedding test kit: an `Embedder` on the OpenAI-compatible provider pointed at the fake
//! server, pools running chunking + embedding in process, and vector-table readers.
#![allow(dead_code)]

use crate::common::{PoolHandle, pool_config};
use crate::docs::DocKit;
use crate::fake_openai::FakeOpenAi;
use chatter_worker::jobs::Registry;
use chatter_worker::jobs::chunk::ChunkSettings;
use chatter_worker::jobs::embed::limiter::{RateLimiter, Unlimited};
use chatter_worker::jobs::embed::openai::{OpenAi, OpenAiConfig};
use chatter_worker::jobs::embed::provider::RequestLimits;
use chatter_worker::jobs::embed::{EmbedSettings, Embedder};
use std::sync::Arc;
use std::time::Duration;

pub fn openai_config(fake: &FakeOpenAi, dims: usize) -> OpenAiConfig {
    OpenAiConfig {
        base_url: fake.base_url.clone(),
        api_key: Some("sk-test".into()),
        model: "fake-embedding-model".into(),
        dimensions: dims,
        send_dimensions: false,
        limits: RequestLimits {
            max_inputs: 2048,
            max_tokens: 300_000,
        },
        timeout: Duration::from_secs(10),
    }
}

pub fn quick_settings() -> EmbedSettings {
    EmbedSettings {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..EmbedSettings::default()
    }
}

pub async fn embedder(
    k: &DocKit,
    config: OpenAiConfig,
    limiter: Arc<dyn RateLimiter>,
    settings: EmbedSettings,
) -> Arc<Embedder> {
    let provider = Arc::new(OpenAi::new(config).unwrap());
    Arc::new(
        Embedder::new(provider, k.store.clone(), k.outbox(), limiter, settings)
            .await
            .unwrap(),
    )
}

pub async fn default_embedder(k: &DocKit, fake: &FakeOpenAi) -> Arc<Embedder> {
    embedder(
        k,
        openai_config(fake, 16),
        Arc::new(Unlimited),
        quick_settings(),
    )
    .await
}

/// Chunking (with the embedding step) and embedding pools in this process.
pub fn pools(k: &DocKit, e: &Arc<Embedder>, embed_batch: usize) -> (PoolHandle, PoolHandle) {
    let mut settings: ChunkSettings = k.settings();
    settings.embed = true;
    settings.embed_batch = embed_batch;
    let mut reg = Registry::builtin();
    k.chunker(settings).install(&mut reg);
    e.clone().install(&mut reg);
    let chunking = k.h.start_pool(&k.q, reg.clone(), pool_config(2));
    let embedding = k.h.start_pool(&k.h.queue("embedding"), reg, pool_config(4));
    (chunking, embedding)
}

/// (chunks of the document, chunks with a vector, vector rows) in the embedder's space.
pub async fn vector_counts(k: &DocKit, e: &Embedder, doc: &str) -> (i64, i64, i64) {
    let t = e.tables();
    let sql = format!(
        "SELECT (SELECT count(*) FROM document_chunks WHERE document_id = $1),
                (SELECT count(DISTINCT c.id) FROM document_chunks c JOIN {v} v ON v.chunk_id = c.id
                  WHERE c.document_id = $1),
                (SELECT count(*) FROM {v} WHERE document_id = $1)",
        v = t.vectors
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(doc)
        .fetch_one(&k.db)
        .await
        .unwrap()
}
