-- Products platform admins offer ("2 CPU / 4 GiB"), as amounts per unit.
CREATE TABLE resource_specs (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    amounts      JSONB NOT NULL,        -- resource -> milli-units per unit
    active       BOOLEAN NOT NULL DEFAULT true,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A tenant's request for resources (the R1 form) and where it is in its workflow.
CREATE TABLE resource_requests (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_name   TEXT NOT NULL,
    applicant      TEXT NOT NULL,
    phone          TEXT NOT NULL DEFAULT '',
    email          TEXT NOT NULL,
    application    TEXT NOT NULL,
    base_services  TEXT[] NOT NULL DEFAULT '{}',
    purpose        TEXT NOT NULL DEFAULT '',
    server_type    TEXT NOT NULL CHECK (server_type IN ('application-host', 'mpp', 'hadoop')),
    oracle_needed  BOOLEAN NOT NULL DEFAULT false,
    storage        TEXT NOT NULL DEFAULT '',
    bandwidth      TEXT NOT NULL DEFAULT '',
    data_centre    TEXT NOT NULL,
    spec_id        UUID NOT NULL REFERENCES resource_specs (id),
    count          INTEGER NOT NULL CHECK (count > 0),
    remarks        TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL CHECK (state IN ('draft', 'submitted', 'approved', 'rejected', 'provisioned')),
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX resource_requests_tenant ON resource_requests (tenant_id, id);

-- Every step of every request: who moved it, when, and why.
CREATE TABLE resource_request_steps (
    request_id UUID NOT NULL REFERENCES resource_requests (id) ON DELETE CASCADE,
    seq        BIGSERIAL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, seq)
);
