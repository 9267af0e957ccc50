-- What the member cluster reports its namespace actually uses (ResourceQuota
-- status.used), per partition and resource, in milli-units.
CREATE TABLE observed_usage (
    partition_id UUID NOT NULL REFERENCES partitions (id) ON DELETE CASCADE,
    resource     TEXT NOT NULL,
    observed     BIGINT NOT NULL,
    reported_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partition_id, resource)
);

-- Usage over time for reports: snapshots of every level, and every report.
CREATE TABLE usage_history (
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    level       TEXT NOT NULL,
    owner_id    UUID NOT NULL,
    key         TEXT NOT NULL DEFAULT '',
    resource    TEXT NOT NULL,
    hard        BIGINT,
    used        BIGINT,
    observed    BIGINT,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX usage_history_tenant_time ON usage_history (tenant_id, recorded_at);
