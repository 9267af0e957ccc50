-- Slotted strategies (blue-green, canary, A/B, shadow): the release runs its
-- version in a slot beside the one it replaces and moves traffic in phases.
-- Every phase change is written here before the driver acts on it, so a
-- restarted driver resumes the phase where it stood.
ALTER TABLE releases
    ADD COLUMN slot             TEXT CHECK (slot IN ('blue', 'green')),  -- this release's slot (NULL: unslotted)
    ADD COLUMN replaces         INTEGER,        -- the release it replaces (the current one when it was made)
    ADD COLUMN phase            TEXT NOT NULL DEFAULT 'rollout'
                                CHECK (phase IN ('rollout', 'traffic', 'waiting', 'finishing', 'aborting', 'done')),
    ADD COLUMN step             INTEGER NOT NULL DEFAULT 0,    -- canary: the step being applied
    ADD COLUMN applied          TEXT NOT NULL DEFAULT '',      -- the last phase/step whose objects were applied
    ADD COLUMN traffic          INTEGER NOT NULL DEFAULT 0,    -- percent of requests the new version serves
    ADD COLUMN hold_until       TIMESTAMPTZ,                   -- canary: the current step holds until then
    ADD COLUMN phase_started_at TIMESTAMPTZ;                   -- for the deadline of an active phase

ALTER TABLE releases DROP CONSTRAINT releases_state_check;
ALTER TABLE releases ADD CONSTRAINT releases_state_check
    CHECK (state IN ('awaiting-approval', 'deploying', 'succeeded', 'failed', 'superseded', 'cancelled', 'aborted'));
