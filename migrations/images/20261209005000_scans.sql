-- Scanners speaking Harbor's scanner adapter API; the Authorization sent to
-- the adapter sealed (ChaCha20-Poly1305) like registries' passwords.
CREATE TABLE scanners (
    id                   UUID PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    url                  TEXT NOT NULL,
    authorization_sealed BYTEA,
    scan_on_push         BOOLEAN NOT NULL DEFAULT false,
    is_default           BOOLEAN NOT NULL DEFAULT false,
    adapter_name         TEXT NOT NULL DEFAULT '',
    adapter_vendor       TEXT NOT NULL DEFAULT '',
    adapter_version      TEXT NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One default scanner at most: scans go to it.
CREATE UNIQUE INDEX scanners_one_default ON scanners (is_default) WHERE is_default;

-- One scan per image: asked again, it starts over.
CREATE TABLE scans (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL,
    repository      TEXT NOT NULL,
    digest          TEXT NOT NULL,
    scanner_id      UUID REFERENCES scanners (id) ON DELETE SET NULL,
    status          TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    adapter_scan_id TEXT NOT NULL DEFAULT '',
    vulnerabilities JSONB NOT NULL DEFAULT '[]',
    message         TEXT NOT NULL DEFAULT '',
    attempts        INT NOT NULL DEFAULT 0,
    next_check_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    requested_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    UNIQUE (repository, digest)
);
CREATE INDEX scans_due ON scans (next_check_at) WHERE status IN ('queued', 'running');
CREATE INDEX scans_tenant ON scans (tenant_id);

-- The highest severity a tenant's deploys into an environment accept.
CREATE TABLE scan_policies (
    tenant_id    UUID NOT NULL,
    environment  TEXT NOT NULL,
    max_severity TEXT NOT NULL
                 CHECK (max_severity IN ('unknown', 'negligible', 'low', 'medium', 'high', 'critical')),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, environment)
);
