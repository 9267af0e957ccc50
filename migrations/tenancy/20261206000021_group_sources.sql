-- Groups name their source: `ldap:<group DN>` or `oidc:<provider>:<group>`,
-- so a group of one OIDC provider no longer grants the role of a same-named
-- group of another.
--
-- Recorded memberships know their source from the user's subject
-- (`ldap:<uid>`, `oidc:<provider>:<sub>`).
UPDATE group_members
SET group_name = CASE
    WHEN subject LIKE 'oidc:%:%' THEN 'oidc:' || split_part(subject, ':', 2) || ':' || group_name
    ELSE 'ldap:' || group_name
END
WHERE group_name NOT LIKE 'ldap:%' AND group_name NOT LIKE 'oidc:%';

-- A binding does not say which provider its group came from: a DN is the
-- directory's; any other name becomes `oidc:*:<group>`, which keeps granting
-- the role to that group of any provider, as before, until an administrator
-- replaces it with `oidc:<provider>:<group>` (the API accepts no new `*`).
UPDATE role_bindings
SET subject = CASE WHEN subject LIKE '%=%' THEN 'ldap:' || subject ELSE 'oidc:*:' || subject END
WHERE subject_kind = 'group' AND subject NOT LIKE 'ldap:%' AND subject NOT LIKE 'oidc:%';
