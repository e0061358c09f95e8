-- Guest-to-user links (SPEC §3): a visitor is linked once; its sessions moved
-- to the user in the same transaction, and its tokens are refused from then on.
CREATE TABLE visitor_links (
    tenant_id    TEXT    NOT NULL,
    visitor      TEXT    NOT NULL,
    user_subject TEXT    NOT NULL,
    linked_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, visitor)
) STRICT;

-- Nodes poll for links made elsewhere by time.
CREATE INDEX visitor_links_linked_at ON visitor_links (linked_at);
