-- Erasing a subject (SPEC §18) finds the visitor links naming it as the
-- user without reading the whole tenant's. (Its usage rows are found by
-- session, and by subject through the tenant's own rows: an erase is rare,
-- and an index on every turn's usage row would cost every turn.)
CREATE INDEX visitor_links_user ON visitor_links (tenant_id, user_subject);
