-- Gray releases go out one cluster (or partition) at a time. The waves are
-- fixed when the rollout starts, from where the application's bindings run
-- then, and kept here so a restarted driver goes on with the same waves:
-- [{"name": cluster name or partition id, "clusters": [cluster, ...]}, ...].
-- `step` is the wave being rolled out; `applied` = 'gray-<step>' once its
-- bindings were applied.
ALTER TABLE releases ADD COLUMN gray_waves JSONB;
