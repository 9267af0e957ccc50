CREATE TABLE projects (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- A partition is one namespace of a project in one member cluster.
CREATE TABLE partitions (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id     UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    cluster        TEXT NOT NULL,
    data_centre    TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    node_selector  JSONB NOT NULL DEFAULT '{}',
    network_policy TEXT NOT NULL DEFAULT 'deny-all-ingress'
        CHECK (network_policy IN ('deny-all-ingress', 'allow-all-ingress', 'deny-all-egress', 'allow-all-egress', 'deny-all')),
    limit_range    JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (cluster, namespace)
);
CREATE INDEX partitions_project ON partitions (project_id);

-- Hard limits and what is held against them, per level of the hierarchy and
-- resource, in milli-units. A level that does not name a resource does not
-- limit it (its parents still do). `used` is what reservations hold there
-- (reserved or committed); it only changes under the tenant's admission lock.
CREATE TABLE quotas (
    tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    level     TEXT NOT NULL CHECK (level IN ('tenant', 'cluster', 'data_centre', 'dr_reserve', 'project', 'partition')),
    owner_id  UUID NOT NULL,          -- the tenant (for tenant, splits and DR reserve), project or partition
    key       TEXT NOT NULL DEFAULT '', -- the cluster or data centre of a split
    resource  TEXT NOT NULL,
    hard      BIGINT,
    used      BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (level, owner_id, key, resource)
);
CREATE INDEX quotas_tenant ON quotas (tenant_id);

CREATE TABLE reservations (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id      UUID NOT NULL,
    partition_id    UUID NOT NULL,
    cluster         TEXT NOT NULL,
    data_centre     TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    purpose         TEXT NOT NULL CHECK (purpose IN ('normal', 'failover')),
    amounts         JSONB NOT NULL,     -- resource -> milli-units
    state           TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'released', 'expired', 'refused')),
    refusal         TEXT,
    expires_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX reservations_expiring ON reservations (tenant_id, expires_at) WHERE state = 'reserved';
CREATE INDEX reservations_partition ON reservations (partition_id) WHERE state IN ('reserved', 'committed');
