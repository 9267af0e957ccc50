-- Failover (R3): each binding's DR tier, toleration and singleton flag; when
-- a cluster was last reached and since when it is out of contact; and the
-- persisted failover / failback operations.
ALTER TABLE bindings
    ADD COLUMN dr_tier       TEXT NOT NULL DEFAULT 'manual' CHECK (dr_tier IN ('active-active', 'auto-failover', 'manual')),
    ADD COLUMN toleration_ms BIGINT NOT NULL DEFAULT 10000,
    ADD COLUMN singleton     BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN failover_error TEXT;   -- the last failover's refusal, until one succeeds

ALTER TABLE clusters
    ADD COLUMN last_contact_at  TIMESTAMPTZ,   -- last successful probe
    ADD COLUMN not_ready_since  TIMESTAMPTZ;   -- left Ready at; NULL while Ready or never Ready

-- One failover (replicas moved off `from_cluster`) or failback (moved back
-- onto it). `previous` is the assignment before the failover (what failback
-- restores), `to_targets` the assignment written; both JSON arrays of
-- {cluster, partition_id, namespace, replicas}.
CREATE TABLE failovers (
    id                 UUID PRIMARY KEY,
    binding_id         UUID NOT NULL REFERENCES bindings (id) ON DELETE CASCADE,
    tenant_id          UUID NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('failover', 'failback')),
    trigger            TEXT NOT NULL CHECK (trigger IN ('automatic', 'operator')),
    from_cluster       TEXT NOT NULL,
    to_clusters        TEXT[] NOT NULL DEFAULT '{}',
    previous           JSONB NOT NULL DEFAULT '[]',
    to_targets         JSONB NOT NULL DEFAULT '[]',
    state              TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'placing', 'applied', 'available', 'failed')),
    reason             TEXT NOT NULL DEFAULT '',
    fault_detected_at  TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    replaced_at        TIMESTAMPTZ,
    available_at       TIMESTAMPTZ,
    finished_at        TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- At most one open operation per binding.
CREATE UNIQUE INDEX failovers_open ON failovers (binding_id) WHERE state NOT IN ('available', 'failed');
CREATE INDEX failovers_tenant ON failovers (tenant_id, id);
