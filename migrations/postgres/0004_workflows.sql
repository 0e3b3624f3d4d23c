-- Workflow runs (CHATTER_CONTRACTS.md, Workflows), created when absent so tables Chatter
-- already created are left as they are.

-- Stored definitions a `run_workflow {definition_id}` job names.
CREATE TABLE IF NOT EXISTS workflow_definitions (
    id          VARCHAR(64) PRIMARY KEY,
    owner_id    VARCHAR(64) NOT NULL,
    name        TEXT        NOT NULL,
    description TEXT,
    nodes       JSONB       NOT NULL,
    edges       JSONB       NOT NULL,
    metadata    JSONB       NOT NULL DEFAULT '{}',
    version     INTEGER     NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS workflow_definitions_owner ON workflow_definitions (owner_id);

-- One row per run, with Chatter's columns; `job_id` and `fence` are ours: the claim whose
-- writes count (a worker that lost its claim can no longer write).
CREATE TABLE IF NOT EXISTS workflow_executions (
    id                VARCHAR(100) PRIMARY KEY,
    definition_id     VARCHAR(64),
    template_id       VARCHAR(64),
    owner_id          VARCHAR(64) NOT NULL,
    workflow_type     TEXT        NOT NULL DEFAULT 'custom'
        CHECK (workflow_type IN ('template', 'definition', 'custom', 'chat')),
    workflow_config   JSONB,
    status            TEXT        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    started_at        TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ,
    execution_time_ms BIGINT,
    input_data        JSONB,
    output_data       JSONB,
    error_message     TEXT,
    execution_log     JSONB       NOT NULL DEFAULT '[]',
    tokens_used       BIGINT      NOT NULL DEFAULT 0,
    cost              DOUBLE PRECISION NOT NULL DEFAULT 0,
    job_id            VARCHAR(26),
    fence             BIGINT      NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS workflow_executions_owner ON workflow_executions (owner_id, created_at DESC);
CREATE INDEX IF NOT EXISTS workflow_executions_status ON workflow_executions (status);

-- The checkpoints: row n holds the run's whole state once n nodes have finished (a tools node
-- updates its row after every call), with the node that finished last.
CREATE TABLE IF NOT EXISTS workflow_steps (
    execution_id VARCHAR(100) NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    step         INTEGER      NOT NULL,
    node_id      TEXT,
    node_type    TEXT,
    duration_ms  BIGINT,
    error        TEXT,
    state        JSONB        NOT NULL,
    created_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (execution_id, step)
);

-- Conversation memory of `memory` nodes: messages per owner and key, oldest first by id.
CREATE TABLE IF NOT EXISTS workflow_memory (
    id         BIGSERIAL   PRIMARY KEY,
    owner_id   VARCHAR(64) NOT NULL,
    key        TEXT        NOT NULL,
    role       TEXT        NOT NULL,
    content    TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS workflow_memory_key ON workflow_memory (owner_id, key, id DESC);
