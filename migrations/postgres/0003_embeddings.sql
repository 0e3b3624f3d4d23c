-- pgvector, and the registry of vector spaces: one table of chunk vectors per (model, dimensions),
-- each with its own HNSW cosine index, and one embedding cache per space keyed by content hash.
-- The worker creates a space's tables when a provider first writes into it (store/vectors.rs),
-- so a new model needs no migration; `vector_store_maintenance` finds every index here.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS embedding_spaces (
    name         TEXT PRIMARY KEY,
    provider     TEXT        NOT NULL,
    model        TEXT        NOT NULL,
    dimensions   INTEGER     NOT NULL CHECK (dimensions BETWEEN 1 AND 16000),
    vector_table TEXT        NOT NULL,
    cache_table  TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (model, dimensions)
);
