-- Versions of a template: drafts are edited, a published version never
-- changes again (the trigger refuses it, whatever the application does).
CREATE TABLE template_versions (
    id           UUID PRIMARY KEY,
    template_id  UUID NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    tenant_id    UUID,                -- the template's, so every read filters by tenant
    version      TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT '',
    spec         JSONB NOT NULL,
    state        TEXT NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'published')),
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    UNIQUE (template_id, version)
);
CREATE INDEX template_versions_tenant ON template_versions (tenant_id);

CREATE FUNCTION template_version_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 'published' THEN
        RAISE EXCEPTION 'template version % is published and cannot change', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER template_version_immutable BEFORE UPDATE ON template_versions
    FOR EACH ROW EXECUTE FUNCTION template_version_immutable();
