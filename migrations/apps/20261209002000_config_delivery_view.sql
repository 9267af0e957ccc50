-- The REST view of config delivery: when content last reached the clusters
-- (NULL: not since the reconciler took the application over), and a stable
-- id per delivered config to page by.
ALTER TABLE config_delivery_states ADD COLUMN delivered_at TIMESTAMPTZ;
ALTER TABLE config_deliveries ADD COLUMN id UUID NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX config_deliveries_id ON config_deliveries (id);
