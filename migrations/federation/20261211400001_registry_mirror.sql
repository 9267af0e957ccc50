-- The sub-registry (host[:port]) that serves a cluster, usually its data
-- centre's copy of the platform registry: workloads applied there pull the
-- platform's images from it, with the partition's pull secrets extended to
-- it. Empty: the cluster pulls from the platform registry.
ALTER TABLE clusters ADD COLUMN registry_mirror TEXT NOT NULL DEFAULT '';
