-- The visitor's latest page context (SPEC §16), encrypted like content,
-- shown to agents only. Written with the turn whose message carried it.
ALTER TABLE sessions ADD COLUMN context BLOB;
