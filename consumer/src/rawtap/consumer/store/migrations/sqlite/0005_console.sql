-- rawtap SQLite schema 5: what the console lists, filters and searches by.
--
-- call_id: the record's call (every attempt of one logical call shares it), a filter
-- copy like session_id, filled by the worker from now on and here from the envelope.
-- A call id over 1,024 bytes (the filter copies' bound) is not backfilled.
ALTER TABLE records ADD COLUMN call_id TEXT;
UPDATE records
SET call_id = replace(json_extract(CAST(envelope AS TEXT), '$.call_id'), char(0), char(65533))
WHERE instr(CAST(envelope AS TEXT), '"call_id":null') = 0
  AND json_valid(CAST(envelope AS TEXT))
  AND json_type(CAST(envelope AS TEXT), '$.call_id') = 'text'
  AND length(CAST(json_extract(CAST(envelope AS TEXT), '$.call_id') AS BLOB)) <= 1024;
CREATE INDEX IF NOT EXISTS records_call ON records (call_id, started_at_ns)
    WHERE call_id IS NOT NULL;

-- The console's other filters and facets, each newest first without a sort.
CREATE INDEX IF NOT EXISTS records_service ON records (service, started_at_ns);
CREATE INDEX IF NOT EXISTS records_end_state ON records (end_state, started_at_ns);
CREATE INDEX IF NOT EXISTS records_status ON records (status, started_at_ns);

-- The time index also holds what the overview charts read (Store.call_facts), so that
-- reading the newest 20,000 rows never touches the wide rows (whose later columns
-- sit behind the bodies, on overflow pages); filters on these columns are tested on
-- the index too.
DROP INDEX IF EXISTS records_started;
CREATE INDEX records_started ON records (
    started_at_ns, record_id, provider, model, status, end_state, ended_ns, ttft_ns,
    input_tokens, output_tokens, cached_tokens
);

-- Full-text search over the derived text (the 1,024-byte preview): an FTS5 table kept
-- up to date by the triggers below, whatever writes `records` (the worker, `rawtap
-- rederive`, retention, SQL by hand). 3-character prefixes have an index of their
-- own (a search matches words of 3 or more characters as prefixes; 1 and 2 character
-- prefix indexes would cost a fifth more on every write).
--
-- Each record's FTS row id is a *slot*: its start time in ns (clamped far from the
-- 64-bit limits), or when another record holds that value, the next value free after
-- the slots taken within the following ms. So FTS rows are in start-time order and a
-- search reads its matches newest first and stops after a page (rawtap's
-- store/sqlite/_search.py); `push` (slot - start time, 0 but for such records) says
-- how far a slot may be from its start time. records_fts_keys maps slots to records
-- both ways (`records` has no rowid; deleting by record_id in the FTS table would scan it).
CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(
    record_id UNINDEXED,
    text,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '3',
    columnsize = 0
);
CREATE TABLE IF NOT EXISTS records_fts_keys (
    fts_rowid INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    push INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_fts_pushed ON records_fts_keys (push) WHERE push > 0;

-- Backfill: a temporary table whose insert trigger is the one below, so that slots are
-- taken one record after the other.
CREATE TEMP TABLE rawtap_fts_backfill (record_id TEXT, started_at_ns INTEGER, text TEXT);
CREATE TEMP TRIGGER rawtap_fts_backfill_row AFTER INSERT ON rawtap_fts_backfill
BEGIN
    INSERT INTO records_fts_keys (fts_rowid, record_id, push)
    SELECT slot, new.record_id, slot - base FROM (
        SELECT base, CASE
            WHEN NOT EXISTS (SELECT 1 FROM records_fts_keys WHERE fts_rowid = base) THEN base
            WHEN NOT EXISTS (SELECT 1 FROM records_fts_keys WHERE fts_rowid = next) THEN next
            ELSE (SELECT max(fts_rowid) + 1 FROM records_fts_keys)
        END AS slot FROM (
            SELECT base, (SELECT max(fts_rowid) + 1 FROM records_fts_keys
                          WHERE fts_rowid BETWEEN base AND base + 1000000) AS next
            FROM (SELECT max(min(new.started_at_ns, 9223370000000000000),
                             -9223370000000000000) AS base)
        )
    );
    INSERT INTO records_fts (rowid, record_id, text)
        VALUES (last_insert_rowid(), new.record_id, new.text);
END;
INSERT INTO rawtap_fts_backfill (record_id, started_at_ns, text)
    SELECT record_id, started_at_ns, text FROM records WHERE text IS NOT NULL
    ORDER BY started_at_ns, record_id;
DROP TABLE rawtap_fts_backfill;

CREATE TRIGGER IF NOT EXISTS records_fts_insert AFTER INSERT ON records
WHEN new.text IS NOT NULL
BEGIN
    INSERT INTO records_fts_keys (fts_rowid, record_id, push)
    SELECT slot, new.record_id, slot - base FROM (
        SELECT base, CASE
            WHEN NOT EXISTS (SELECT 1 FROM records_fts_keys WHERE fts_rowid = base) THEN base
            WHEN NOT EXISTS (SELECT 1 FROM records_fts_keys WHERE fts_rowid = next) THEN next
            ELSE (SELECT max(fts_rowid) + 1 FROM records_fts_keys)
        END AS slot FROM (
            SELECT base, (SELECT max(fts_rowid) + 1 FROM records_fts_keys
                          WHERE fts_rowid BETWEEN base AND base + 1000000) AS next
            FROM (SELECT max(min(new.started_at_ns, 9223370000000000000),
                             -9223370000000000000) AS base)
        )
    );
    INSERT INTO records_fts (rowid, record_id, text)
        VALUES (last_insert_rowid(), new.record_id, new.text);
END;

-- `rawtap rederive` (Store.set_derived) rewrites every derived column: an unchanged
-- text costs nothing here.
CREATE TRIGGER IF NOT EXISTS records_fts_update AFTER UPDATE OF text ON records
WHEN old.text IS NOT new.text
BEGIN
    UPDATE records_fts SET text = new.text
    WHERE new.text IS NOT NULL AND rowid =
        (SELECT fts_rowid FROM records_fts_keys WHERE record_id = old.record_id);
    DELETE FROM records_fts
    WHERE new.text IS NULL AND rowid =
        (SELECT fts_rowid FROM records_fts_keys WHERE record_id = old.record_id);
    DELETE FROM records_fts_keys WHERE new.text IS NULL AND record_id = old.record_id;
    INSERT INTO records_fts_keys (fts_rowid, record_id, push)
    SELECT slot, new.record_id, slot - base FROM (
        SELECT base, CASE
            WHEN NOT EXISTS (SELECT 1 FROM records_fts_keys WHERE fts_rowid = base) THEN base
            WHEN NOT EXISTS (SELECT 1 FROM records_fts_keys WHERE fts_rowid = next) THEN next
            ELSE (SELECT max(fts_rowid) + 1 FROM records_fts_keys)
        END AS slot FROM (
            SELECT base, (SELECT max(fts_rowid) + 1 FROM records_fts_keys
                          WHERE fts_rowid BETWEEN base AND base + 1000000) AS next
            FROM (SELECT max(min(new.started_at_ns, 9223370000000000000),
                             -9223370000000000000) AS base)
        )
    ) WHERE old.text IS NULL AND new.text IS NOT NULL;
    INSERT INTO records_fts (rowid, record_id, text)
    SELECT last_insert_rowid(), new.record_id, new.text
    WHERE old.text IS NULL AND new.text IS NOT NULL;
END;

CREATE TRIGGER IF NOT EXISTS records_fts_delete AFTER DELETE ON records
BEGIN
    DELETE FROM records_fts WHERE rowid =
        (SELECT fts_rowid FROM records_fts_keys WHERE record_id = old.record_id);
    DELETE FROM records_fts_keys WHERE record_id = old.record_id;
END;
