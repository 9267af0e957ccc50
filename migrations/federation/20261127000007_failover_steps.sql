-- Fencing confirmation (R3): each failover / failback records its steps with
-- their times (a JSON array of {"name", "at"}, oldest first), and a
-- singleton's failover has a state of its own while its old copy is being
-- stopped (scaled to 0 in the old cluster, then confirmed without pods).
ALTER TABLE failovers ADD COLUMN steps JSONB NOT NULL DEFAULT '[]';

ALTER TABLE failovers DROP CONSTRAINT failovers_state_check;
ALTER TABLE failovers ADD CONSTRAINT failovers_state_check
    CHECK (state IN ('pending', 'fencing', 'placing', 'applied', 'available', 'failed'));

-- Operations recorded before steps existed: what their timestamps tell.
UPDATE failovers SET steps = (
    SELECT COALESCE(jsonb_agg(jsonb_build_object('name', s.name, 'at', s.at) ORDER BY s.at, s.ord), '[]')
    FROM (VALUES (1, 'opened', created_at),
                 (2, 'applied', replaced_at),
                 (3, 'available', available_at),
                 (4, CASE WHEN state = 'failed' THEN 'failed: ' || reason END, finished_at)) AS s(ord, name, at)
    WHERE s.at IS NOT NULL AND s.name IS NOT NULL);
