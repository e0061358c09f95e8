-- A user's memory (SPEC §18): preferences as key -> value per tenant and user.
-- `value` is AES-GCM ciphertext. Its associated data names the row by `id`,
-- derived from tenant, subject and key (crates/store/src/memory.rs): a
-- value moved to another row, user or tenant does not decrypt. `id` is
-- also what `keys rotate` pages by.
CREATE TABLE memory (
    tenant_id  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    id         TEXT    NOT NULL UNIQUE,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, subject, key)
) STRICT;
