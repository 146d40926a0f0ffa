-- rawtap SQLite schema 1: one row per record; the envelope (every field but the
-- bodies, as the shared JSON schema) is the source of truth, the other columns
-- are copies for filtering.
CREATE TABLE IF NOT EXISTS records (
    record_id       TEXT PRIMARY KEY,
    schema_version  INTEGER NOT NULL,
    producer_id     TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    session_id      TEXT,
    service         TEXT,
    provider        TEXT NOT NULL,
    status          INTEGER,
    end_state       TEXT NOT NULL,
    stream          INTEGER NOT NULL,
    started_at_ns   INTEGER NOT NULL,
    captured_at_ns  INTEGER NOT NULL,
    persisted_at_ns INTEGER NOT NULL,
    envelope        BLOB NOT NULL,
    request_body    BLOB NOT NULL,
    body            BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_started ON records (started_at_ns);
CREATE INDEX IF NOT EXISTS records_session ON records (session_id, started_at_ns);
CREATE INDEX IF NOT EXISTS records_provider ON records (provider, started_at_ns);
CREATE INDEX IF NOT EXISTS records_producer ON records (producer_id, seq);
