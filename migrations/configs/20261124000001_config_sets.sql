CREATE TABLE config_sets (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    application TEXT NOT NULL,
    environment TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, application, environment)
);
