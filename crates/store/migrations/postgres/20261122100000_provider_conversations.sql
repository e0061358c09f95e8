-- A vendor's own conversation id per session (Dify keeps the history by it,
-- SPEC §13), under a key naming the vendor app; gone with the session.
CREATE TABLE provider_conversations (
    session_id      TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    provider_key    TEXT COLLATE "C" NOT NULL,
    conversation_id TEXT NOT NULL,
    PRIMARY KEY (session_id, provider_key)
);
