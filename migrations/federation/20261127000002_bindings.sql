-- Bindings: a tenant's Kubernetes objects, where they go (placement) and the
-- resolved per-cluster assignment (binding_targets). `generation` counts
-- changes; the propagator applies each target until its applied_generation
-- reaches the binding's.
CREATE TABLE bindings (
    id                   UUID PRIMARY KEY,
    tenant_id            UUID NOT NULL,
    project_id           UUID,
    name                 TEXT NOT NULL,
    objects              JSONB NOT NULL,          -- array of Kubernetes objects as given
    placement            JSONB NOT NULL,
    replicas             INTEGER NOT NULL,
    replica_cpu_milli    BIGINT NOT NULL DEFAULT 0,   -- requests of one replica (all workloads)
    replica_memory_milli BIGINT NOT NULL DEFAULT 0,
    generation           BIGINT NOT NULL DEFAULT 1,
    deleted              BOOLEAN NOT NULL DEFAULT false,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- One row per cluster a binding is (or was, while `removing`) assigned to.
CREATE TABLE binding_targets (
    binding_id          UUID NOT NULL REFERENCES bindings (id) ON DELETE CASCADE,
    cluster             TEXT NOT NULL,
    partition_id        UUID NOT NULL,
    namespace           TEXT NOT NULL,
    replicas            INTEGER NOT NULL,
    removing            BOOLEAN NOT NULL DEFAULT false,  -- no longer assigned: delete its objects
    generation          BIGINT NOT NULL,
    applied_generation  BIGINT NOT NULL DEFAULT 0,
    applied_kinds       JSONB NOT NULL DEFAULT '[]',     -- kinds written at the last apply, pruned by label
    synced_at           TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    failures            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error          TEXT,
    -- Quota: `amounts` reserved in tenancy for this target; `reservation_id`
    -- waits to be committed at the next successful apply, when the previously
    -- committed one (`held_reservation_id`) is released.
    amounts             JSONB NOT NULL DEFAULT '{}',
    reservation_id      UUID,
    held_reservation_id UUID,
    -- Observed in the cluster (polled): per-workload replicas and conditions.
    workloads           JSONB NOT NULL DEFAULT '[]',
    observed_at         TIMESTAMPTZ,
    settled             BOOLEAN NOT NULL DEFAULT false,   -- every workload available at the last observation
    PRIMARY KEY (binding_id, cluster)
);
CREATE INDEX binding_targets_due ON binding_targets (next_attempt_at);
CREATE INDEX binding_targets_cluster ON binding_targets (cluster);
