-- An application's activity (R3): every failover and failback of one of its
-- services' bindings, as federation announces it, one row per operation
-- with its latest state and its timed steps.
CREATE TABLE activity (
    id             UUID PRIMARY KEY,          -- UUIDv7: newest first by id
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    tenant_id      UUID NOT NULL,
    service        TEXT NOT NULL,
    kind           TEXT NOT NULL,             -- failover or failback
    operation_id   UUID NOT NULL,             -- federation's operation (GET /failovers)
    trigger        TEXT NOT NULL,             -- automatic or operator
    from_cluster   TEXT NOT NULL,
    to_clusters    TEXT[] NOT NULL DEFAULT '{}',
    state          TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    steps          JSONB NOT NULL DEFAULT '[]',   -- [{name, at}], oldest first
    at             TIMESTAMPTZ NOT NULL,      -- its first step
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (application_id, operation_id)
);
CREATE INDEX activity_application ON activity (application_id, id);
