-- How the server treats an environment's nodes (node expiry, ...), as a JSON object.
ALTER TABLE environments ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
