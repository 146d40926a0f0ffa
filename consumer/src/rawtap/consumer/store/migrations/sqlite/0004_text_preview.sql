-- The derived text is stored cut to 1,024 bytes (a filter copy) and derived again from
-- the body on read; text_chars is its full length. Rows stored before keep their full
-- text and a NULL text_chars, which reads as not cut.
ALTER TABLE records ADD COLUMN text_chars INTEGER;
