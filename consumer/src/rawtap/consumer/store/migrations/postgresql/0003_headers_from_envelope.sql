-- rawtap PostgreSQL schema 3: headers and metadata are stored once, in the envelope.
--
-- Schema 1 kept request_headers, response_headers and metadata twice: inside the
-- envelope (the record's source of truth) and again as jsonb columns for SQL
-- users. The copies cost a jsonb encoding per record on every write and their
-- bytes on disk; the view `records_json` gives SQL users the same fields, read
-- from the envelope when queried, e.g.
--   SELECT record_id, metadata->>'endpoint' FROM records_json WHERE ...
-- jsonb cannot hold U+0000, so an escaped NUL reads back as U+FFFD there.
-- Dropping a column is a catalogue change: instant, whatever the table's size.
-- Workers of an earlier release refuse this store at start; one already running
-- gets "column does not exist" on its next commit and retries (acknowledging
-- nothing) until it is replaced.
ALTER TABLE records
    DROP COLUMN request_headers,
    DROP COLUMN response_headers,
    DROP COLUMN metadata;

CREATE VIEW records_json AS
SELECT r.record_id,
       r.started_at,
       j.envelope -> 'request_headers'  AS request_headers,
       j.envelope -> 'response_headers' AS response_headers,
       j.envelope -> 'metadata'         AS metadata,
       j.envelope
FROM records AS r,
     LATERAL (
         SELECT replace(convert_from(r.envelope, 'UTF8'), '\u0000', '\ufffd')::jsonb AS envelope
     ) AS j;
