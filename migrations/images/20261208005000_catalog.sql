-- Credentials of a registry the platform logs in to, sealed (ChaCha20-Poly1305).
ALTER TABLE registries ADD COLUMN username TEXT NOT NULL DEFAULT '';
ALTER TABLE registries ADD COLUMN password_sealed BYTEA;

-- The key and certificate the platform signs registry tokens with; the key sealed.
CREATE TABLE signing_keys (
    id              UUID PRIMARY KEY,
    key_sealed      BYTEA NOT NULL,
    certificate_pem TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE repositories (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL,
    project_id UUID NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX repositories_tenant ON repositories (tenant_id, id);

CREATE TABLE tags (
    id            UUID PRIMARY KEY,
    repository_id UUID NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    tenant_id     UUID NOT NULL,
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL DEFAULT '',
    size          BIGINT NOT NULL DEFAULT 0,
    platforms     JSONB NOT NULL DEFAULT '[]',
    created       TIMESTAMPTZ,
    labels        JSONB NOT NULL DEFAULT '{}',
    exposed_ports TEXT[] NOT NULL DEFAULT '{}',
    entrypoint    TEXT[] NOT NULL DEFAULT '{}',
    cmd           TEXT[] NOT NULL DEFAULT '{}',
    "user"        TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL DEFAULT '',
    revision      TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT 'pushed'
                  CHECK (state IN ('built', 'pushed', 'tested', 'released', 'deprecated', 'deleted')),
    pushed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (repository_id, name)
);
CREATE INDEX tags_labels ON tags USING GIN (labels);
CREATE INDEX tags_tenant ON tags (tenant_id);

-- Each registry notification once: the registry retries until it gets a 2xx.
CREATE TABLE registry_events (
    id          TEXT PRIMARY KEY,
    action      TEXT NOT NULL,
    repository  TEXT NOT NULL,
    tag         TEXT NOT NULL DEFAULT '',
    digest      TEXT NOT NULL DEFAULT '',
    size        BIGINT NOT NULL DEFAULT 0,
    actor       TEXT NOT NULL DEFAULT '',
    tenant_id   UUID,
    at          TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Blobs a tenant's pushes stored, for its storage quota.
CREATE TABLE blobs (
    tenant_id UUID NOT NULL,
    digest    TEXT NOT NULL,
    size      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, digest)
);

CREATE TABLE storage_quotas (
    tenant_id   UUID PRIMARY KEY,
    limit_bytes BIGINT NOT NULL CHECK (limit_bytes >= 0)
);

CREATE TABLE robots (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    project_id  UUID NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    secret_hash BYTEA NOT NULL,
    scopes      TEXT[] NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ
);
CREATE INDEX robots_tenant ON robots (tenant_id, id);
