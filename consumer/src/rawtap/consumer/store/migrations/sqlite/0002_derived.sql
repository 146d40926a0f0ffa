-- rawtap SQLite schema 2: derived fields as columns (written by the worker's
-- parsers, rewritten by `rawtap rederive`), plus request method, URL, end time
-- and body size for listing without reading the envelope.
-- parser_version: NULL = never derived; 0 = derived, no parser applied.
ALTER TABLE records ADD COLUMN method TEXT;
ALTER TABLE records ADD COLUMN url TEXT;
ALTER TABLE records ADD COLUMN ended_ns INTEGER;
ALTER TABLE records ADD COLUMN body_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN parser TEXT;
ALTER TABLE records ADD COLUMN parser_version INTEGER;
ALTER TABLE records ADD COLUMN model TEXT;
ALTER TABLE records ADD COLUMN response_id TEXT;
ALTER TABLE records ADD COLUMN request_id TEXT;
ALTER TABLE records ADD COLUMN input_tokens INTEGER;
ALTER TABLE records ADD COLUMN output_tokens INTEGER;
ALTER TABLE records ADD COLUMN cached_tokens INTEGER;
ALTER TABLE records ADD COLUMN reasoning_tokens INTEGER;
ALTER TABLE records ADD COLUMN finish_reason TEXT;
ALTER TABLE records ADD COLUMN ttft_ns INTEGER;
ALTER TABLE records ADD COLUMN text TEXT;
ALTER TABLE records ADD COLUMN tool_calls TEXT;
ALTER TABLE records ADD COLUMN provider_error TEXT;
ALTER TABLE records ADD COLUMN parse_error TEXT;
UPDATE records SET
    body_size = length(body),
    method = json_extract(CAST(envelope AS TEXT), '$.method'),
    url = json_extract(CAST(envelope AS TEXT), '$.url'),
    ended_ns = json_extract(CAST(envelope AS TEXT), '$.ended_ns')
WHERE json_valid(CAST(envelope AS TEXT));
CREATE INDEX IF NOT EXISTS records_model ON records (model, started_at_ns);
