-- Fewer indexes for every event to write. Each outbox row is inserted with a
-- change and updated when it is delivered; every index costs both writes.
-- The gauges' count and the admin list by any status but `delivered` read
-- one partial index of the rows not delivered (small: delivered rows are
-- most of the outbox); the list of delivered rows reads the tenant's rows in
-- id order, most of which are delivered.
DROP INDEX outbox_open;
DROP INDEX outbox_tenant_status;
CREATE INDEX outbox_tenant_open ON outbox (tenant_id, status, id) WHERE status <> 'delivered';
