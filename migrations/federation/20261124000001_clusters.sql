CREATE TABLE clusters (
    id             UUID PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    api_endpoint   TEXT NOT NULL,
    data_centre    TEXT NOT NULL,
    region         TEXT NOT NULL DEFAULT '',
    zone           TEXT NOT NULL DEFAULT '',
    network_domain TEXT NOT NULL DEFAULT 'core' CHECK (network_domain IN ('core', 'dmz', 'internet')),
    environment    TEXT NOT NULL DEFAULT 'test' CHECK (environment IN ('production', 'test', 'dr')),
    labels         JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX clusters_data_centre ON clusters (data_centre);

-- Tenants as learned from tenancy's events; partitions are placed only for these.
CREATE TABLE known_tenants (
    tenant_id  UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    learned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    event_id   UUID NOT NULL
);
