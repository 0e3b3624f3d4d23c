-- The worker's own bookkeeping, beside Chatter's tables: which run of which job owns a document's
-- processing now. Every write of chunks or of a final status checks it in the same transaction,
-- so a run that lost its lease, or that a newer job superseded, can no longer change anything.
CREATE TABLE IF NOT EXISTS document_runs (
    document_id VARCHAR(26) PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    job_id      VARCHAR(26) NOT NULL,
    fence       BIGINT      NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
