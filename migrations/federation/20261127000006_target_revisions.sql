-- Per-target pinning: a binding's object sets are numbered revisions, and a
-- target may be held at an earlier revision while others take the newest
-- (a gray release upgrades cluster by cluster). `bindings.objects` stays the
-- newest revision; every revision a target may run is kept here, and one no
-- target runs any more is dropped at the next apply.
ALTER TABLE bindings ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;   -- the newest revision

CREATE TABLE binding_revisions (
    binding_id           UUID NOT NULL REFERENCES bindings (id) ON DELETE CASCADE,
    revision             BIGINT NOT NULL,
    objects              JSONB NOT NULL,
    replica_cpu_milli    BIGINT NOT NULL DEFAULT 0,   -- requests of one replica of this revision
    replica_memory_milli BIGINT NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (binding_id, revision)
);
INSERT INTO binding_revisions (binding_id, revision, objects, replica_cpu_milli, replica_memory_milli)
    SELECT id, revision, objects, replica_cpu_milli, replica_memory_milli FROM bindings;

-- NULL: the target follows the binding's newest revision; a number: it is
-- held at that revision (written by an apply that named it in `hold`).
ALTER TABLE binding_targets ADD COLUMN objects_revision BIGINT;
