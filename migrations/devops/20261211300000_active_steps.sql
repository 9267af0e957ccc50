-- The conductor's pass looks for running runs with no step queued or running,
-- and a runner's claim counts its running steps: both read only the active
-- steps, which these keep apart from the ever-growing finished ones.
CREATE INDEX steps_active_by_run ON steps (run_id) WHERE state IN ('queued', 'running');
CREATE INDEX steps_running_by_runner ON steps (runner_id) WHERE state = 'running';
