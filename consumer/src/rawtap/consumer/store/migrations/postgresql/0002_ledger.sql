-- rawtap PostgreSQL schema 2: the ledger that lets `rawtap stats` reconcile
-- accepted = stored + dead-lettered + lost-with-reason, per producer.
CREATE TABLE IF NOT EXISTS dead_letters (
    stream      text   NOT NULL,
    entry_id    text   NOT NULL,
    record_id   text,
    producer_id text,
    seq         bigint,
    error       text   NOT NULL,
    deliveries  bigint NOT NULL,
    dead_at_ns  bigint NOT NULL,
    PRIMARY KEY (stream, entry_id)
);
CREATE INDEX IF NOT EXISTS dead_letters_producer ON dead_letters (producer_id, seq);
CREATE TABLE IF NOT EXISTS producer_progress (
    producer_id    text    PRIMARY KEY,
    next_seq       bigint  NOT NULL,
    final          boolean NOT NULL,
    reported_at_ns bigint  NOT NULL
);
CREATE TABLE IF NOT EXISTS producer_drops (
    producer_id text   NOT NULL,
    reason      text   NOT NULL,
    first_seq   bigint NOT NULL,
    last_seq    bigint NOT NULL,
    PRIMARY KEY (producer_id, reason, first_seq, last_seq)
);
CREATE TABLE IF NOT EXISTS trimmed (
    stream   text NOT NULL,
    entry_id text NOT NULL,
    PRIMARY KEY (stream, entry_id)
);
