-- Labels: named groups of nodes, manual or decided by a query (dynamic), and their members.
CREATE TABLE labels (
    name TEXT PRIMARY KEY NOT NULL,
    -- The environment whose nodes it may hold; NULL: every environment's.
    environment TEXT,
    -- The SQL of a dynamic label; NULL for a manual one.
    query TEXT,
    platform TEXT,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
) STRICT;

CREATE TABLE node_labels (
    label TEXT NOT NULL REFERENCES labels (name) ON DELETE CASCADE,
    node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    PRIMARY KEY (label, node_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX node_labels_by_node ON node_labels (node_id);

-- A membership change lists the node's key with the revoked ones, so servers caching the
-- node by key read it again (with its new labels). Also when the label or the node goes.
CREATE TRIGGER node_label_added AFTER INSERT ON node_labels
BEGIN
    INSERT INTO revoked_keys (node_key, revoked_at_ms)
    SELECT node_key, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM nodes WHERE id = NEW.node_id;
END;

CREATE TRIGGER node_label_removed AFTER DELETE ON node_labels
BEGIN
    INSERT INTO revoked_keys (node_key, revoked_at_ms)
    SELECT node_key, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM nodes WHERE id = OLD.node_id;
END;
