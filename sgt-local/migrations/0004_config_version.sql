-- The config's revision, for compare-and-swap replacement (no concurrent edit lost unseen).
ALTER TABLE environments ADD COLUMN config_version INTEGER NOT NULL DEFAULT 1;
