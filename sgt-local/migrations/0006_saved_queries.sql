-- Saved queries: a team's library of vetted questions, run by name.
CREATE TABLE saved_queries (
    name TEXT PRIMARY KEY NOT NULL,
    sql TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
