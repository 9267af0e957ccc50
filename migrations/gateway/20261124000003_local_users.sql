-- Local accounts: the break-glass administrator, for when LDAP and OIDC are
-- unreachable. Passwords are argon2id hashes (PHC strings).
CREATE TABLE local_users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
