-- Services outside the clusters (a mainframe database, a SaaS API) that a
-- tenant registers so that apps in its partitions reach them by a stable
-- in-cluster name: by DNS name (a Service of type ExternalName) or by
-- addresses (a Service without a selector and its Endpoints). Each is one
-- federation binding, named like the service, which writes it into the
-- partitions its placement chooses.
CREATE TABLE external_services (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    project_id  UUID,                       -- only this project's partitions
    name        TEXT NOT NULL,              -- the in-cluster Service name (RFC 1035 label)
    description TEXT NOT NULL DEFAULT '',
    dns_name    TEXT,                       -- ExternalName target, or
    addresses   TEXT[] NOT NULL DEFAULT '{}',  -- IPs of the Endpoints
    ports       JSONB NOT NULL DEFAULT '[]',   -- [{name, port, protocol}]
    placement   JSONB NOT NULL,
    binding_id  UUID,                       -- federation's binding
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    CHECK ((dns_name IS NULL) <> (cardinality(addresses) = 0))
);
