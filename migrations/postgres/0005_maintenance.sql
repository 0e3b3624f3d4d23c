-- Minimal versions of Chatter's tables the maintenance jobs work on, created when absent so a
-- database Chatter already created is left as it is.
CREATE TABLE IF NOT EXISTS conversations (
    id              VARCHAR(26) PRIMARY KEY,
    user_id         VARCHAR(64) NOT NULL,
    title           TEXT,
    status          TEXT        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'archived', 'deleted')),
    last_message_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS conversations_status_updated ON conversations (status, updated_at);

CREATE TABLE IF NOT EXISTS messages (
    id              VARCHAR(26) PRIMARY KEY,
    conversation_id VARCHAR(26) NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT        NOT NULL,
    content         TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages (conversation_id, created_at);

CREATE TABLE IF NOT EXISTS audit_logs (
    id         VARCHAR(26) PRIMARY KEY,
    user_id    VARCHAR(64),
    action     TEXT        NOT NULL,
    details    JSONB       NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_logs_created ON audit_logs (created_at);
