-- sgt's embedded store: one SQLite file.

CREATE TABLE environments (
    name              TEXT PRIMARY KEY,
    config            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    config_updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE nodes (
    id              TEXT PRIMARY KEY,
    node_key        TEXT NOT NULL UNIQUE,
    environment     TEXT NOT NULL,
    host_identifier TEXT NOT NULL,
    hardware_uuid   TEXT NOT NULL,
    platform_type   TEXT NOT NULL,
    host_details    TEXT NOT NULL,
    enrolled_at     INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    UNIQUE (environment, host_identifier, hardware_uuid)
) STRICT;

CREATE TABLE queries (
    id         TEXT PRIMARY KEY,
    sql        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;

-- One row per (query, targeted node): delivery state, then the node's answer.
CREATE TABLE query_targets (
    query_id    TEXT NOT NULL REFERENCES queries (id) ON DELETE CASCADE,
    node_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    status      INTEGER,
    rows        TEXT,
    message     TEXT,
    stats       TEXT,
    received_at INTEGER,
    PRIMARY KEY (query_id, node_id)
) STRICT;

CREATE INDEX query_targets_pending ON query_targets (node_id) WHERE state = 'pending';

CREATE TABLE carves (
    session_id  TEXT PRIMARY KEY,
    node_id     TEXT NOT NULL,
    carve_guid  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    block_count INTEGER NOT NULL,
    block_size  INTEGER NOT NULL,
    carve_size  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    status      TEXT NOT NULL,
    sha256      TEXT,
    finished_at INTEGER
) STRICT;

CREATE INDEX carves_by_node ON carves (node_id, created_at);

CREATE TABLE carve_blocks (
    session_id TEXT NOT NULL REFERENCES carves (session_id) ON DELETE CASCADE,
    block_id   INTEGER NOT NULL,
    PRIMARY KEY (session_id, block_id)
) STRICT, WITHOUT ROWID;
