-- Retention's sweeper (SPEC §11.6) finds a tenant's messages created before
-- its cutoff, oldest first, without reading any other tenant's.
CREATE INDEX messages_tenant_created ON messages (tenant_id, created_at);
