-- People and robots the platform has seen, as the identity provider names them.
CREATE TABLE users (
    subject       TEXT PRIMARY KEY,       -- ldap:jdoe, oidc:<issuer>#<sub>, local:admin
    display_name  TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at TIMESTAMPTZ
);

-- Directory groups and who is in them, replaced from the claims at every login.
CREATE TABLE group_members (
    group_name TEXT NOT NULL,
    subject    TEXT NOT NULL REFERENCES users (subject) ON DELETE CASCADE,
    PRIMARY KEY (group_name, subject)
);
CREATE INDEX group_members_subject ON group_members (subject);

-- A user or group holding a role in a tenant, or in one project of it.
CREATE TABLE role_bindings (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id   UUID REFERENCES projects (id) ON DELETE CASCADE,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'group')),
    subject      TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'developer', 'operator', 'tenant-admin')),
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX role_bindings_unique ON role_bindings (tenant_id, coalesce(project_id, '00000000-0000-0000-0000-000000000000'), subject_kind, subject);
CREATE INDEX role_bindings_subject ON role_bindings (subject_kind, subject);
