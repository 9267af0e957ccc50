-- Tenants' cosign signing keys: made by the platform (the PKCS#8 private key
-- sealed with ChaCha20-Poly1305 like the token-signing key) or registered by
-- the tenant (public half only, key_sealed NULL).
CREATE TABLE tenant_signing_keys (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    name           TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    key_sealed     BYTEA,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- The last check of an image's cosign signatures (`sha256-<hex>.sig` in its
-- repository) against its owner's keys. No row: never checked, unsigned.
CREATE TABLE signature_checks (
    repository TEXT NOT NULL,
    digest     TEXT NOT NULL,
    tenant_id  UUID NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('unsigned', 'signed', 'invalid')),
    key_ids    UUID[] NOT NULL DEFAULT '{}',
    message    TEXT NOT NULL DEFAULT '',
    checked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository, digest)
);
CREATE INDEX signature_checks_tenant ON signature_checks (tenant_id);

-- Whether a tenant's deploys into an environment need signed images (no row: no).
CREATE TABLE signature_policies (
    tenant_id   UUID NOT NULL,
    environment TEXT NOT NULL,
    required    BOOLEAN NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, environment)
);
