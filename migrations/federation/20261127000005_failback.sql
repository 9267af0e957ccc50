-- Automatic failback (R3): per binding whether its replicas return by
-- themselves once the lost cluster is stable again, and in which order
-- (priority, higher first); and the steps an operation went through
-- (fencing a singleton: old copy scaled to 0, its cluster confirming no
-- pods remain), as a JSON array of {name, message, at}.
ALTER TABLE bindings
    ADD COLUMN failback TEXT NOT NULL DEFAULT 'manual' CHECK (failback IN ('automatic', 'manual')),
    ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- The tiers' defaults for bindings recorded before the setting existed.
UPDATE bindings SET failback = 'automatic' WHERE dr_tier IN ('auto-failover', 'active-active');

ALTER TABLE failovers ADD COLUMN steps JSONB NOT NULL DEFAULT '[]';
