-- The admin API: node platforms and filters, campaign targets, users, tokens, audit log,
-- enroll-secret usage.

ALTER TABLE nodes ADD COLUMN platform TEXT NOT NULL DEFAULT '';
UPDATE nodes SET platform = CASE
    WHEN (CAST(platform_type AS INTEGER) & 16) != 0 THEN 'darwin'
    WHEN (CAST(platform_type AS INTEGER) & 8) != 0 THEN 'linux'
    WHEN (CAST(platform_type AS INTEGER) & 2) != 0 THEN 'windows'
    WHEN (CAST(platform_type AS INTEGER) & 32) != 0 THEN 'freebsd'
    ELSE '' END;
CREATE INDEX nodes_by_environment ON nodes (environment, id);

-- targets: the QueryTargets JSON; broad: 1 when it can match nodes enrolled later.
ALTER TABLE queries ADD COLUMN targets TEXT NOT NULL DEFAULT '{}';
ALTER TABLE queries ADD COLUMN broad INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queries ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE queries ADD COLUMN cancelled_at INTEGER;
CREATE INDEX queries_live_broad ON queries (expires_at) WHERE broad = 1 AND cancelled_at IS NULL;
CREATE INDEX queries_by_created ON queries (created_at, id);

CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;

CREATE TABLE audit_log (
    id     TEXT PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;

CREATE TABLE secret_usage (
    secret_id    TEXT PRIMARY KEY,
    use_count    INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
) STRICT;
