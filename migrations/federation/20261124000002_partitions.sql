-- Partitions as tenancy describes them (from its events), and how far the
-- member cluster has been brought to match. `generation` counts changes;
-- the reconciler applies until `applied_generation` reaches it.
CREATE TABLE partitions (
    partition_id       UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL,
    cluster            TEXT NOT NULL,
    namespace          TEXT NOT NULL,
    desired            BYTEA NOT NULL,     -- encoded paas.v1.PartitionChanged
    deleted            BOOLEAN NOT NULL DEFAULT false,
    generation         BIGINT NOT NULL DEFAULT 1,
    applied_generation BIGINT NOT NULL DEFAULT 0,
    last_error         TEXT,
    failures           INTEGER NOT NULL DEFAULT 0,   -- in a row; sets the backoff
    next_attempt_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX partitions_pending ON partitions (next_attempt_at) WHERE applied_generation < generation;
