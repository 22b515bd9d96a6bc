-- Nodes awaiting an operator's approval (environments with enroll approval on).
ALTER TABLE nodes ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;

-- An approval lists the node's key with the revoked ones, so servers caching the node by key
-- read it again.
CREATE TRIGGER node_approved AFTER UPDATE OF pending ON nodes
WHEN OLD.pending <> NEW.pending
BEGIN
    INSERT INTO revoked_keys (node_key, revoked_at_ms)
    VALUES (NEW.node_key, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
