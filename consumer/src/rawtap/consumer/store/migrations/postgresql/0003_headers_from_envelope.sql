-- rawtap PostgreSQL schema 3: headers and metadata are stored once, in the envelope.
--
-- Schema 1 kept request_headers, response_headers and metadata twice: inside the
-- envelope (the record's source of truth) and again as jsonb columns for SQL
-- users. The copies cost a jsonb encoding per record on every write and their
-- bytes on disk; the view `records_json` gives SQL users the same fields, read
-- from the envelope when queried, e.g.
--   SELECT record_id, metadata->>'endpoint' FROM records_json WHERE ...
-- jsonb cannot hold U+0000, so an escaped NUL reads back as U+FFFD there.
-- A view or index of your own on the dropped columns must go first (DROP COLUMN
-- refuses while a view depends on them): records_json replaces them.
-- Dropping a column is a catalogue change: instant, whatever the table's size.
-- Workers of an earlier release refuse this store at start; one already running
-- gets "column does not exist" on its next commit and retries (acknowledging
-- nothing) until it is replaced.
ALTER TABLE records
    DROP COLUMN request_headers,
    DROP COLUMN response_headers,
    DROP COLUMN metadata;

-- Literals below are written for standard_conforming_strings (PostgreSQL's default).
SET LOCAL standard_conforming_strings = on;

-- An escaped NUL (\u0000 preceded by an even number of backslashes) becomes \ufffd;
-- an escaped backslash followed by the text "u0000" is left alone. Envelopes
-- without the sequence skip the regular expression. A field an envelope leaves
-- out reads as it does on the record: [] for headers, {} for metadata.
CREATE VIEW records_json AS
SELECT r.record_id,
       r.started_at,
       coalesce(j.envelope -> 'request_headers', '[]'::jsonb)  AS request_headers,
       coalesce(j.envelope -> 'response_headers', '[]'::jsonb) AS response_headers,
       coalesce(j.envelope -> 'metadata', '{}'::jsonb)         AS metadata,
       j.envelope
FROM records AS r,
     LATERAL (SELECT convert_from(r.envelope, 'UTF8') AS text) AS t,
     LATERAL (
         SELECT (CASE WHEN strpos(t.text, '\u0000') = 0 THEN t.text
                      ELSE regexp_replace(t.text, '(?<!\\)((?:\\\\)*)\\u0000', '\1\\ufffd', 'g')
                 END)::jsonb AS envelope
     ) AS j;
