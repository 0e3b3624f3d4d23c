-- Chatter's documents and document_chunks (CHATTER_CONTRACTS.md), created when absent so a
-- database Chatter already created is left as it is. Ids are ULID strings.
CREATE TABLE IF NOT EXISTS documents (
    id                      VARCHAR(26) PRIMARY KEY,
    owner_id                VARCHAR(64) NOT NULL,
    title                   TEXT        NOT NULL,
    filename                TEXT        NOT NULL,
    file_path               TEXT        NOT NULL,
    file_size               BIGINT,
    file_hash               VARCHAR(64),
    mime_type               TEXT,
    document_type           TEXT        NOT NULL DEFAULT 'other'
        CHECK (document_type IN ('pdf', 'text', 'markdown', 'html', 'doc', 'docx', 'rtf', 'odt',
                                 'csv', 'json', 'xml', 'other')),
    extracted_text          TEXT,
    status                  TEXT        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'processed', 'failed', 'archived')),
    processing_started_at   TIMESTAMPTZ,
    processing_completed_at TIMESTAMPTZ,
    processing_error        TEXT,
    chunk_size              INTEGER     NOT NULL DEFAULT 1000 CHECK (chunk_size BETWEEN 100 AND 10000),
    chunk_overlap           INTEGER     NOT NULL DEFAULT 200 CHECK (chunk_overlap BETWEEN 0 AND 2000),
    chunk_count             INTEGER     NOT NULL DEFAULT 0,
    tags                    JSONB       NOT NULL DEFAULT '[]',
    version                 INTEGER     NOT NULL DEFAULT 1,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (owner_id, file_hash)
);
CREATE INDEX IF NOT EXISTS documents_owner_status ON documents (owner_id, status);

CREATE TABLE IF NOT EXISTS document_chunks (
    id                   VARCHAR(26) PRIMARY KEY,
    document_id          VARCHAR(26) NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    chunk_index          INTEGER     NOT NULL,
    content              TEXT        NOT NULL,
    content_hash         VARCHAR(64) NOT NULL,
    token_count          INTEGER     NOT NULL,
    start_char           INTEGER     NOT NULL,
    end_char             INTEGER     NOT NULL,
    language             TEXT,
    embedding_provider   TEXT,
    embedding_model      TEXT,
    embedding_dimensions INTEGER,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- one set of chunks per document: a re-run replaces it, never adds to it
    UNIQUE (document_id, chunk_index)
);
CREATE INDEX IF NOT EXISTS document_chunks_content_hash ON document_chunks (content_hash);
