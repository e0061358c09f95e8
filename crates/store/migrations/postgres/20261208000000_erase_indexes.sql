-- Erasing a subject (SPEC §18) finds its usage rows and the visitor links
-- naming it as the user without reading the whole tenant's.
CREATE INDEX usage_events_tenant_subject ON usage_events (tenant_id, subject);
CREATE INDEX visitor_links_user ON visitor_links (tenant_id, user_subject);
