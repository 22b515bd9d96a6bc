-- Node keys that stopped working (node deleted or re-keyed), so servers caching nodes by key
-- can drop them. Rows older than a day are purged as new ones are written.
CREATE TABLE revoked_keys (
    node_key      TEXT NOT NULL,
    revoked_at_ms INTEGER NOT NULL
) STRICT;

CREATE INDEX revoked_keys_by_time ON revoked_keys (revoked_at_ms);

-- Written by triggers, so every path that deletes or re-keys a node records it, atomically.
CREATE TRIGGER nodes_key_replaced AFTER UPDATE OF node_key ON nodes
WHEN OLD.node_key <> NEW.node_key
BEGIN
    DELETE FROM revoked_keys WHERE revoked_at_ms < CAST(unixepoch('subsec') * 1000 AS INTEGER) - 86400000;
    INSERT INTO revoked_keys (node_key, revoked_at_ms)
    VALUES (OLD.node_key, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

CREATE TRIGGER nodes_deleted AFTER DELETE ON nodes
BEGIN
    DELETE FROM revoked_keys WHERE revoked_at_ms < CAST(unixepoch('subsec') * 1000 AS INTEGER) - 86400000;
    INSERT INTO revoked_keys (node_key, revoked_at_ms)
    VALUES (OLD.node_key, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
