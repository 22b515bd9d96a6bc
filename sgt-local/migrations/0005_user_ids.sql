-- Users get an id unique among every user there ever was, and tokens name it: a token of a
-- deleted user never works for a later user of the same name.
ALTER TABLE users ADD COLUMN id TEXT NOT NULL DEFAULT '';
UPDATE users SET id = lower(hex(randomblob(16)));
ALTER TABLE tokens ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
UPDATE tokens SET user_id = COALESCE((SELECT id FROM users WHERE users.username = tokens.username), '');
