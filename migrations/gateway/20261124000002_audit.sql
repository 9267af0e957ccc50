-- Every write and login attempt. A row is written before the request is
-- forwarded (result 'pending') and completed after, so an attempt is never
-- lost, even when the gateway dies in between.
CREATE TABLE audit (
    id          UUID PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       TEXT NOT NULL,          -- subject, or 'anonymous'
    tenant_id   UUID,                   -- the tenant the action concerns, when known
    action      TEXT NOT NULL,          -- e.g. 'POST /api/v1/tenants/{id}/projects'
    target      TEXT NOT NULL DEFAULT '',-- ids from the path
    request_id  TEXT NOT NULL DEFAULT '',
    source_ip   TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    result      TEXT NOT NULL,          -- 'pending', or the HTTP status
    finished_at TIMESTAMPTZ
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_tenant_at ON audit (tenant_id, at);
