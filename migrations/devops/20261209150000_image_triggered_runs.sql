-- Runs started by an image push. Its own migration after the runs table's
-- (20261208006000): migrations in this change's assigned range sort before it.
ALTER TABLE runs DROP CONSTRAINT runs_trigger_check;
ALTER TABLE runs ADD CONSTRAINT runs_trigger_check CHECK (trigger IN ('webhook', 'manual', 'schedule', 'image'));
