-- Application access keys: a credential per (tenant, application) that the
-- gateway accepts on the config center's read and watch routes only, for
-- that application's sets and the shared sets it links. Only a SHA-256 of
-- the secret is kept; the secret is shown once, when the key is made.
CREATE TABLE config_access_keys (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL,
    application  TEXT NOT NULL,
    name         TEXT NOT NULL,
    hash         BYTEA NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX config_access_keys_tenant ON config_access_keys (tenant_id, application);
