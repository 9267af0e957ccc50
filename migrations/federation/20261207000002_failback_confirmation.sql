-- A singleton's automatic failback is a planned move with a gap (its copy
-- stops before it starts in the returning cluster): it waits for an
-- operator's confirmation, with the expected gap in its steps.
ALTER TABLE failovers DROP CONSTRAINT failovers_state_check;
ALTER TABLE failovers ADD CONSTRAINT failovers_state_check
    CHECK (state IN ('awaiting-confirmation', 'pending', 'fencing', 'placing', 'applied', 'available', 'failed'));
