-- rawtap PostgreSQL schema 5: what the console lists, filters and searches by.
--
-- call_id: the record's call (every attempt of one logical call shares it), a filter
-- copy like session_id, filled by the worker from now on and here from the envelope.
-- A call id over 1,024 bytes (the filter copies' bound) is not backfilled, nor one of
-- a row whose envelope is not valid JSON (such a row cannot be read anyway).
-- The backfill and the index builds run in the migration's transaction, which holds
-- the records table: workers wait for it (5-6 minutes per million records on 2 cores).
ALTER TABLE records ADD COLUMN call_id text;

-- Literals below are written for standard_conforming_strings (PostgreSQL's default).
SET LOCAL standard_conforming_strings = on;

CREATE FUNCTION pg_temp.rawtap_0005_call_id(envelope bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    doc text;
    value text;
BEGIN
    doc := convert_from(envelope, 'UTF8');
    IF strpos(doc, '\u0000') > 0 THEN  -- jsonb cannot hold U+0000 (as in records_json)
        doc := regexp_replace(doc, '(?<!\\)((?:\\\\)*)\\u0000', '\1\\ufffd', 'g');
    END IF;
    value := doc::jsonb ->> 'call_id';
    IF octet_length(value) > 1024 THEN
        RETURN NULL;
    END IF;
    RETURN value;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- Envelopes encoded by rawtap say "call_id":null when there is none: skipped unparsed.
UPDATE records SET call_id = pg_temp.rawtap_0005_call_id(envelope)
WHERE position('"call_id":null'::bytea IN envelope) = 0
  AND pg_temp.rawtap_0005_call_id(envelope) IS NOT NULL;
DROP FUNCTION pg_temp.rawtap_0005_call_id(bytea);

CREATE INDEX records_call ON records (call_id, started_at) WHERE call_id IS NOT NULL;

-- The console's other filters and facets, each newest first without a sort.
CREATE INDEX records_service ON records (service, started_at) WHERE service IS NOT NULL;
CREATE INDEX records_end_state ON records (end_state, started_at);
CREATE INDEX records_status ON records (status, started_at) WHERE status IS NOT NULL;

-- The time index is keyed by the whole order of the store (start time, then record id)
-- and also holds what the overview charts read (Store.call_facts): newest-first pages
-- need no sort, and the charts' 20,000 rows are an index-only scan where autovacuum
-- has marked the pages all-visible (rows written since are read from the table).
DROP INDEX records_started;
CREATE INDEX records_started ON records (started_at, started_at_ns, record_id) INCLUDE (
    provider, model, status, end_state, ended_ns, ttft_ns, input_tokens, output_tokens,
    cached_tokens
);

-- Full-text search over the derived text (the 1,024-byte preview): its words as a
-- stored tsvector, and a GIN index on them. A word is a run of letters and digits, as
-- in the SQLite store's FTS5 index: the characters that make PostgreSQL's parser keep
-- `example.com`, `a@b.c`, `3.14`, `/a/b` or `<tag>` as one token (or drop it) become
-- spaces first. Stored, not an expression index: the parser costs ~0.1 ms a row, and a
-- search that reads the newest rows first checks each one (store/postgres/_search.py).
-- Positions are stripped (a search never needs them). The column is computed by
-- PostgreSQL on every write, so the worker, `rawtap rederive` and retention keep it up
-- to date with nothing of their own.
ALTER TABLE records ADD COLUMN text_words tsvector GENERATED ALWAYS AS (
    strip(to_tsvector('simple',
        replace(replace(replace(replace(replace(replace(coalesce(text, ''),
            '.', ' '), '/', ' '), ':', ' '), '@', ' '), '<', ' '), '&', ' ')))
) STORED;
ALTER TABLE records ALTER COLUMN text_words SET STORAGE MAIN;
CREATE INDEX records_text ON records USING gin (text_words);
