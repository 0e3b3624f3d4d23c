-- The embedded store (chatter-jobs store/sqlite): documents, chunks, vectors, workflows, memory.
CREATE TABLE IF NOT EXISTS cw_placeholder_store (x INTEGER);
