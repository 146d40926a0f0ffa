-- rawtap PostgreSQL schema 1.
--
-- One row per record. `envelope` (every field but the bodies, as the shared JSON
-- schema, byte-exact) is the source of truth the record is rebuilt from; the other
-- columns are copies for filtering and SQL: text values have NUL characters
-- replaced (PostgreSQL text cannot hold them), and headers and metadata are jsonb.
-- Derived fields are written by the worker's parsers and rewritten by
-- `rawtap rederive`; parser_version NULL = never derived, 0 = no parser applied.
--
-- The primary key includes started_at so that the same table can be partitioned
-- by day (the marker below becomes `PARTITION BY RANGE (started_at)` when the
-- store is created with partition=day); a record's started_at never changes, so
-- the key is still unique per record_id.
CREATE TABLE records (
    record_id         text        NOT NULL,
    started_at        timestamptz NOT NULL,
    schema_version    smallint    NOT NULL,
    producer_id       text        NOT NULL,
    seq               bigint      NOT NULL,
    session_id        text,
    service           text,
    provider          text        NOT NULL,
    method            text,
    url               text,
    status            bigint,
    end_state         text        NOT NULL,
    stream            boolean     NOT NULL,
    started_at_ns     bigint      NOT NULL,
    ended_ns          bigint,
    captured_at_ns    bigint      NOT NULL,
    persisted_at_ns   bigint      NOT NULL,
    body_size         bigint      NOT NULL,
    request_headers   jsonb       NOT NULL,
    response_headers  jsonb       NOT NULL,
    metadata          jsonb       NOT NULL,
    envelope          bytea       NOT NULL,
    request_body      bytea       NOT NULL,
    body              bytea       NOT NULL,
    parser            text,
    parser_version    integer,
    model             text,
    response_id       text,
    request_id        text,
    input_tokens      bigint,
    output_tokens     bigint,
    cached_tokens     bigint,
    reasoning_tokens  bigint,
    finish_reason     text,
    ttft_ns           bigint,
    text              text,
    tool_calls        jsonb,
    provider_error    text,
    parse_error       text,
    PRIMARY KEY (record_id, started_at)
) /*rawtap:partition*/;

CREATE INDEX records_started ON records (started_at);
CREATE INDEX records_session ON records (session_id, started_at) WHERE session_id IS NOT NULL;
CREATE INDEX records_provider ON records (provider, started_at);
CREATE INDEX records_model ON records (model, started_at) WHERE model IS NOT NULL;
CREATE INDEX records_producer ON records (producer_id, seq);
