-- Automatic failback (R3): per binding whether its replicas return by
-- themselves once the lost cluster is stable again, and in which order
-- (priority, higher first).
ALTER TABLE bindings
    ADD COLUMN failback TEXT NOT NULL DEFAULT 'manual' CHECK (failback IN ('automatic', 'manual')),
    ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- The tiers' defaults for bindings recorded before the setting existed.
UPDATE bindings SET failback = 'automatic' WHERE dr_tier IN ('auto-failover', 'active-active');
