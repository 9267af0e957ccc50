-- Catalog search without per-row work: a repository's count of live tags and
-- the labels its tags carry are kept beside it by triggers on `tags`, so a
-- search by label walks one index in repository order and a page of results
-- counts nothing. Triggers (not the service's code) keep them, so every
-- writer of `tags` (pushes, deletions, lifecycle moves, retention, direct SQL
-- in benchmarks and repairs) keeps them right. They run once per statement
-- over its transition tables: a statement writing many tags updates each
-- repository and label row once, not once per tag.
--
-- (The version sorts after the catalog's own migrations, which this alters.)

ALTER TABLE repositories ADD COLUMN tag_count BIGINT NOT NULL DEFAULT 0;

-- One row per repository and label its tags carry: `value` NULL stands for
-- the label's key alone (a search for `key`), otherwise `key=value`. `tags`
-- is how many of the repository's tags carry it; a row at 0 is removed.
CREATE TABLE repository_labels (
    key           TEXT NOT NULL,
    value         TEXT,
    repository_id UUID NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    tags          BIGINT NOT NULL,
    CONSTRAINT repository_labels_term UNIQUE NULLS NOT DISTINCT (key, value, repository_id)
);
CREATE INDEX repository_labels_repository ON repository_labels (repository_id);
-- Searches read `repository_labels` now; nothing else looks tags up by label.
DROP INDEX tags_labels;

-- A tag written (`sign` 1) or replaced or removed (`sign` -1).
CREATE TYPE tag_change AS (repository_id UUID, labels JSONB, live BOOLEAN, sign INT);

-- Labels as search terms: each `key=value`, and each key alone.
CREATE FUNCTION tag_label_terms(labels JSONB) RETURNS TABLE (key TEXT, value TEXT)
LANGUAGE sql IMMUTABLE AS $$
    SELECT l.key, l.value FROM jsonb_each_text(CASE WHEN jsonb_typeof(labels) = 'object' THEN labels ELSE '{}' END) l
    UNION ALL
    SELECT l.key, NULL FROM jsonb_object_keys(CASE WHEN jsonb_typeof(labels) = 'object' THEN labels ELSE '{}' END) l(key)
$$;

CREATE FUNCTION repository_search_apply(changes tag_change[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE repositories r SET tag_count = r.tag_count + c.d
    FROM (SELECT repository_id, sum(sign) FILTER (WHERE live) AS d FROM unnest(changes) GROUP BY 1) c
    WHERE r.id = c.repository_id AND c.d <> 0;
    -- In a fixed order, so concurrent writers lock label rows in the same order.
    INSERT INTO repository_labels AS rl (key, value, repository_id, tags)
    SELECT t.key, t.value, c.repository_id, sum(c.sign)
    FROM unnest(changes) c, tag_label_terms(c.labels) t
    GROUP BY 1, 2, 3 HAVING sum(c.sign) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT repository_labels_term DO UPDATE SET tags = rl.tags + excluded.tags;
    IF EXISTS (SELECT 1 FROM unnest(changes) WHERE sign < 0) THEN
        DELETE FROM repository_labels
        WHERE tags <= 0 AND repository_id IN (SELECT repository_id FROM unnest(changes) WHERE sign < 0);
    END IF;
END $$;

CREATE FUNCTION tags_keep_repository_search() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM repository_search_apply(ARRAY(
            SELECT ROW(repository_id, labels, state <> 'deleted', 1)::tag_change FROM tags_added));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM repository_search_apply(ARRAY(
            SELECT ROW(repository_id, labels, state <> 'deleted', -1)::tag_change FROM tags_removed));
    ELSE
        PERFORM repository_search_apply(ARRAY(
            SELECT ROW(repository_id, labels, state <> 'deleted', 1)::tag_change FROM tags_added
            UNION ALL
            SELECT ROW(repository_id, labels, state <> 'deleted', -1)::tag_change FROM tags_removed));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tags_inserted_search AFTER INSERT ON tags
    REFERENCING NEW TABLE AS tags_added
    FOR EACH STATEMENT EXECUTE FUNCTION tags_keep_repository_search();
CREATE TRIGGER tags_updated_search AFTER UPDATE ON tags
    REFERENCING OLD TABLE AS tags_removed NEW TABLE AS tags_added
    FOR EACH STATEMENT EXECUTE FUNCTION tags_keep_repository_search();
CREATE TRIGGER tags_deleted_search AFTER DELETE ON tags
    REFERENCING OLD TABLE AS tags_removed
    FOR EACH STATEMENT EXECUTE FUNCTION tags_keep_repository_search();

-- Search by part of a name (`LIKE '%part%'`) through a trigram index once
-- there are more repositories than a scan in name order answers quickly.
-- pg_trgm ships with PostgreSQL and is a trusted extension; when the
-- database has it already (in another schema), its operator class is named
-- where it lives.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
DO $$
DECLARE
    home TEXT;
BEGIN
    SELECT n.nspname INTO home FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    EXECUTE format('CREATE INDEX repositories_name_trigrams ON repositories USING GIN (name %I.gin_trgm_ops)', home);
END $$;

-- What the catalog held before the triggers.
SELECT repository_search_apply(ARRAY(
    SELECT ROW(repository_id, labels, state <> 'deleted', 1)::tag_change FROM tags));
