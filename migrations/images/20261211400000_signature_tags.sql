-- Cosign keeps a signature of `sha256:<hex>` under the tag `sha256-<hex>.sig`
-- of the same repository. Such tags are not versions of the image: the
-- catalog shows their status on the tag they sign, lists hide them, and a
-- repository's count of tags leaves them out (retention decides on them
-- with their image, in the service).
CREATE FUNCTION is_signature_tag(name TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT name ~ '^sha256-[0-9a-fA-F]{64}\.sig$'
$$;

-- As in migration 20261210120000_catalog_search, with signature tags never live.
CREATE OR REPLACE FUNCTION tags_keep_repository_search() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM repository_search_apply(ARRAY(
            SELECT ROW(repository_id, labels, state <> 'deleted' AND NOT is_signature_tag(name), 1)::tag_change
            FROM tags_added));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM repository_search_apply(ARRAY(
            SELECT ROW(repository_id, labels, state <> 'deleted' AND NOT is_signature_tag(name), -1)::tag_change
            FROM tags_removed));
    ELSE
        PERFORM repository_search_apply(ARRAY(
            SELECT ROW(repository_id, labels, state <> 'deleted' AND NOT is_signature_tag(name), 1)::tag_change
            FROM tags_added
            UNION ALL
            SELECT ROW(repository_id, labels, state <> 'deleted' AND NOT is_signature_tag(name), -1)::tag_change
            FROM tags_removed));
    END IF;
    RETURN NULL;
END $$;

-- Counts as they would have been had the triggers always left signatures out.
UPDATE repositories r SET tag_count = c.live
FROM (SELECT r2.id, count(t.id) FILTER (WHERE t.state <> 'deleted' AND NOT is_signature_tag(t.name)) AS live
      FROM repositories r2 LEFT JOIN tags t ON t.repository_id = r2.id GROUP BY r2.id) c
WHERE r.id = c.id AND r.tag_count <> c.live;
