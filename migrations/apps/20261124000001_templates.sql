CREATE TABLE templates (
    id          UUID PRIMARY KEY,
    tenant_id   UUID,                 -- NULL: a platform-wide catalog template
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX templates_tenant_name ON templates (tenant_id, name) WHERE tenant_id IS NOT NULL;
CREATE UNIQUE INDEX templates_catalog_name ON templates (name) WHERE tenant_id IS NULL;
