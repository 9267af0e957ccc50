-- Group DNs compare as DNs: bindings and recorded group memberships keep
-- them in one spelling (attribute types and values in lower case, no spaces
-- around `,`, `+` and `=`), as tenancy now writes them, so a binding written
-- `OU=Groups` matches a directory answering `ou=groups`. DNs with escapes
-- are rare in group names and left as they are (re-grant them if needed).
CREATE FUNCTION pg_temp.dn(subject TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN subject LIKE '%=%' AND position('\' IN subject) = 0
            THEN regexp_replace(lower(btrim(subject)), '\s*([,+=])\s*', '\1', 'g')
        ELSE subject
    END
$$;

-- Two spellings of one group in one place: the older binding stays.
DELETE FROM role_bindings b
USING role_bindings o
WHERE b.subject_kind = 'group' AND o.subject_kind = 'group' AND b.id <> o.id
  AND b.tenant_id = o.tenant_id AND b.project_id IS NOT DISTINCT FROM o.project_id
  AND pg_temp.dn(b.subject) = pg_temp.dn(o.subject)
  AND (o.created_at, o.id) < (b.created_at, b.id);

UPDATE role_bindings SET subject = pg_temp.dn(subject)
WHERE subject_kind = 'group' AND subject <> pg_temp.dn(subject);

INSERT INTO group_members (group_name, subject)
SELECT pg_temp.dn(group_name), subject FROM group_members WHERE group_name <> pg_temp.dn(group_name)
ON CONFLICT DO NOTHING;
DELETE FROM group_members WHERE group_name <> pg_temp.dn(group_name);
