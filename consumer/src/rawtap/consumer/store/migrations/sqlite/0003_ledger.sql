-- rawtap SQLite schema 3: the ledger that lets `rawtap stats` reconcile
-- accepted = stored + dead-lettered + lost-with-reason, per producer.
CREATE TABLE IF NOT EXISTS dead_letters (
    stream      TEXT NOT NULL,
    entry_id    TEXT NOT NULL,
    record_id   TEXT,
    producer_id TEXT,
    seq         INTEGER,
    error       TEXT NOT NULL,
    deliveries  INTEGER NOT NULL,
    dead_at_ns  INTEGER NOT NULL,
    PRIMARY KEY (stream, entry_id)
);
CREATE INDEX IF NOT EXISTS dead_letters_producer ON dead_letters (producer_id, seq);
-- The latest report of each producer: how many records it had accepted.
CREATE TABLE IF NOT EXISTS producer_progress (
    producer_id    TEXT PRIMARY KEY,
    next_seq       INTEGER NOT NULL,
    final          INTEGER NOT NULL,
    reported_at_ns INTEGER NOT NULL
);
-- Seq ranges a producer accepted, then dropped, by reason.
CREATE TABLE IF NOT EXISTS producer_drops (
    producer_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    PRIMARY KEY (producer_id, reason, first_seq, last_seq)
);
-- Pending entry ids whose data MAXLEN trimmed before a worker committed them.
CREATE TABLE IF NOT EXISTS trimmed (
    stream   TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    PRIMARY KEY (stream, entry_id)
);
