-- Sub-registries sit in a data centre or beside one cluster: replication
-- sends a tenant's images only to those of its partitions' data centres/clusters.
ALTER TABLE registries ADD COLUMN data_centre TEXT NOT NULL DEFAULT '';
ALTER TABLE registries ADD COLUMN cluster TEXT NOT NULL DEFAULT '';

CREATE TABLE replication_rules (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL,
    name         TEXT NOT NULL,
    repositories TEXT NOT NULL,
    registry_ids UUID[] NOT NULL,
    on_push      BOOLEAN NOT NULL DEFAULT true,
    schedule     TEXT NOT NULL DEFAULT '',
    next_run_at  TIMESTAMPTZ,
    enabled      BOOLEAN NOT NULL DEFAULT true,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE INDEX replication_rules_tenant ON replication_rules (tenant_id, id);
-- The scheduler looks for rules whose time has come.
CREATE INDEX replication_rules_due ON replication_rules (next_run_at) WHERE enabled AND next_run_at IS NOT NULL;

-- A run is a persisted operation: a worker leases it, copies its items, and
-- a run whose lease lapsed (a crash, a restart) is taken up again.
CREATE TABLE replication_runs (
    id          UUID PRIMARY KEY,
    rule_id     UUID NOT NULL REFERENCES replication_rules (id) ON DELETE CASCADE,
    tenant_id   UUID NOT NULL,
    trigger     TEXT NOT NULL CHECK (trigger IN ('push', 'schedule', 'manual')),
    state       TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    attempts    INT NOT NULL DEFAULT 0,
    not_before  TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ,
    message     TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX replication_runs_rule ON replication_runs (rule_id, id);
CREATE INDEX replication_runs_open ON replication_runs (not_before) WHERE state IN ('queued', 'running');

CREATE TABLE replication_items (
    id          UUID PRIMARY KEY,
    run_id      UUID NOT NULL REFERENCES replication_runs (id) ON DELETE CASCADE,
    registry_id UUID NOT NULL,
    repository  TEXT NOT NULL,
    tag         TEXT NOT NULL,
    digest      TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'copied', 'failed')),
    bytes       BIGINT NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (run_id, registry_id, repository, tag)
);

-- Where a target registry holds a blob of a tenant: the next repository
-- needing it mounts it from there instead of copying it again.
CREATE TABLE replicated_blobs (
    registry_id UUID NOT NULL,
    tenant_id   UUID NOT NULL,
    digest      TEXT NOT NULL,
    repository  TEXT NOT NULL,
    PRIMARY KEY (registry_id, tenant_id, digest)
);
