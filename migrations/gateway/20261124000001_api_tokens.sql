-- API tokens for integrations and robots. Only a SHA-256 of the secret is
-- kept; the secret is shown once, when the token is made.
CREATE TABLE api_tokens (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    hash         BYTEA NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,          -- the first characters, to recognise a token in lists
    tenant_id    UUID NOT NULL,
    project_id   UUID,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'developer', 'operator', 'tenant-admin')),
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id);
