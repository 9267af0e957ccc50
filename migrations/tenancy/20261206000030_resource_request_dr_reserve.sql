-- A request may ask for its amounts to be reserved for failover as well: at
-- provisioning, spec x count again in each other data centre provisioned into,
-- kept as the tenant's DR reserve.
ALTER TABLE resource_requests ADD COLUMN dr_reserve BOOLEAN NOT NULL DEFAULT false;
