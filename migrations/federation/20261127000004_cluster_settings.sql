-- Per-cluster settings an administrator manages (R2): the storage and
-- ingress classes the cluster offers (empty: not managed by the platform)
-- with the default each, and the cluster's NodePort range.
ALTER TABLE clusters
    ADD COLUMN storage_classes       JSONB NOT NULL DEFAULT '[]',
    ADD COLUMN default_storage_class TEXT NOT NULL DEFAULT '',
    ADD COLUMN ingress_classes       JSONB NOT NULL DEFAULT '[]',
    ADD COLUMN default_ingress_class TEXT NOT NULL DEFAULT '',
    ADD COLUMN node_port_first       INTEGER NOT NULL DEFAULT 30000 CHECK (node_port_first BETWEEN 1 AND 65535),
    ADD COLUMN node_port_last        INTEGER NOT NULL DEFAULT 32767 CHECK (node_port_last BETWEEN 1 AND 65535),
    ADD CONSTRAINT clusters_node_port_range CHECK (node_port_first <= node_port_last);

-- Registry credentials a tenant administrator adds to a partition; each
-- becomes a kubernetes.io/dockerconfigjson Secret in its namespace. The
-- password is sealed like cluster credentials (nonce || ciphertext, the
-- partition id and name as associated data).
CREATE TABLE pull_secrets (
    partition_id UUID NOT NULL,
    tenant_id    UUID NOT NULL,
    name         TEXT NOT NULL,
    server       TEXT NOT NULL,
    username     TEXT NOT NULL,
    password     BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (partition_id, name)
);
CREATE INDEX pull_secrets_tenant ON pull_secrets (tenant_id);
