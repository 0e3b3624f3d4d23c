-- The embedded store (chatter-jobs store/sqlite): the tables of migrations/postgres in SQLite.
-- Ids are TEXT (ULIDs), JSON is TEXT, times are INTEGER milliseconds since the Unix epoch (UTC),
-- vectors are BLOBs of little-endian f32 (one table per vector space, created by ensure_space).

-- Documents and their chunks (postgres 0001).
CREATE TABLE IF NOT EXISTS documents (
    id                      TEXT    PRIMARY KEY,
    owner_id                TEXT    NOT NULL,
    title                   TEXT    NOT NULL,
    filename                TEXT    NOT NULL,
    file_path               TEXT    NOT NULL,
    file_size               INTEGER,
    file_hash               TEXT,
    mime_type               TEXT,
    document_type           TEXT    NOT NULL DEFAULT 'other'
        CHECK (document_type IN ('pdf', 'text', 'markdown', 'html', 'doc', 'docx', 'rtf', 'odt',
                                 'csv', 'json', 'xml', 'other')),
    extracted_text          TEXT,
    status                  TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'processed', 'failed', 'archived')),
    processing_started_at   INTEGER,
    processing_completed_at INTEGER,
    processing_error        TEXT,
    chunk_size              INTEGER NOT NULL DEFAULT 1000 CHECK (chunk_size BETWEEN 100 AND 10000),
    chunk_overlap           INTEGER NOT NULL DEFAULT 200 CHECK (chunk_overlap BETWEEN 0 AND 2000),
    chunk_count             INTEGER NOT NULL DEFAULT 0,
    tags                    TEXT    NOT NULL DEFAULT '[]',
    version                 INTEGER NOT NULL DEFAULT 1,
    created_at              INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at              INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    UNIQUE (owner_id, file_hash)
);
CREATE INDEX IF NOT EXISTS documents_owner_status ON documents (owner_id, status);

CREATE TABLE IF NOT EXISTS document_chunks (
    id                   TEXT    PRIMARY KEY,
    document_id          TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    chunk_index          INTEGER NOT NULL,
    content              TEXT    NOT NULL,
    content_hash         TEXT    NOT NULL,
    token_count          INTEGER NOT NULL,
    start_char           INTEGER NOT NULL,
    end_char             INTEGER NOT NULL,
    language             TEXT,
    embedding_provider   TEXT,
    embedding_model      TEXT,
    embedding_dimensions INTEGER,
    created_at           INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    -- one set of chunks per document: a re-run replaces it, never adds to it
    UNIQUE (document_id, chunk_index)
);
CREATE INDEX IF NOT EXISTS document_chunks_content_hash ON document_chunks (content_hash);

-- Which run of which job owns a document's processing now (postgres 0002).
CREATE TABLE IF NOT EXISTS document_runs (
    document_id TEXT    PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    job_id      TEXT    NOT NULL,
    fence       INTEGER NOT NULL,
    started_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);

-- The registry of vector spaces (postgres 0003): each space's vector and cache tables are
-- created by the store when a provider first writes into it.
CREATE TABLE IF NOT EXISTS embedding_spaces (
    name         TEXT    PRIMARY KEY,
    provider     TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    dimensions   INTEGER NOT NULL CHECK (dimensions BETWEEN 1 AND 16000),
    vector_table TEXT    NOT NULL,
    cache_table  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    UNIQUE (model, dimensions)
);

-- Workflows (postgres 0004).
CREATE TABLE IF NOT EXISTS workflow_definitions (
    id          TEXT    PRIMARY KEY,
    owner_id    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    description TEXT,
    nodes       TEXT    NOT NULL,
    edges       TEXT    NOT NULL,
    metadata    TEXT    NOT NULL DEFAULT '{}',
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX IF NOT EXISTS workflow_definitions_owner ON workflow_definitions (owner_id);

CREATE TABLE IF NOT EXISTS workflow_executions (
    id                TEXT    PRIMARY KEY,
    definition_id     TEXT,
    template_id       TEXT,
    owner_id          TEXT    NOT NULL,
    workflow_type     TEXT    NOT NULL DEFAULT 'custom'
        CHECK (workflow_type IN ('template', 'definition', 'custom', 'chat')),
    workflow_config   TEXT,
    status            TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    started_at        INTEGER,
    completed_at      INTEGER,
    execution_time_ms INTEGER,
    input_data        TEXT,
    output_data       TEXT,
    error_message     TEXT,
    execution_log     TEXT    NOT NULL DEFAULT '[]',
    tokens_used       INTEGER NOT NULL DEFAULT 0,
    cost              REAL    NOT NULL DEFAULT 0,
    job_id            TEXT,
    fence             INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at        INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX IF NOT EXISTS workflow_executions_owner ON workflow_executions (owner_id, created_at DESC);
CREATE INDEX IF NOT EXISTS workflow_executions_status ON workflow_executions (status, updated_at);

-- The checkpoints: row n holds the run's whole state once n nodes have finished.
CREATE TABLE IF NOT EXISTS workflow_steps (
    execution_id TEXT    NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    step         INTEGER NOT NULL,
    node_id      TEXT,
    node_type    TEXT,
    duration_ms  INTEGER,
    error        TEXT,
    state        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    PRIMARY KEY (execution_id, step)
);

-- Conversation memory of `memory` nodes: messages per owner and key, oldest first by id.
CREATE TABLE IF NOT EXISTS workflow_memory (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id   TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX IF NOT EXISTS workflow_memory_key ON workflow_memory (owner_id, key, id DESC);

-- The tables the maintenance jobs work on (postgres 0005).
CREATE TABLE IF NOT EXISTS conversations (
    id              TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    title           TEXT,
    status          TEXT    NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'archived', 'deleted')),
    last_message_at INTEGER,
    created_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX IF NOT EXISTS conversations_status_updated ON conversations (status, updated_at);

CREATE TABLE IF NOT EXISTS messages (
    id              TEXT    PRIMARY KEY,
    conversation_id TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT    NOT NULL,
    content         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages (conversation_id, created_at);

CREATE TABLE IF NOT EXISTS audit_logs (
    id         TEXT    PRIMARY KEY,
    user_id    TEXT,
    action     TEXT    NOT NULL,
    details    TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX IF NOT EXISTS audit_logs_created ON audit_logs (created_at);
