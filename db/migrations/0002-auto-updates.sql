-- 0002: standing auto-update rules, and which rule started a rollout.
CREATE TABLE auto_updates (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL DEFAULT '',
	selector TEXT NOT NULL DEFAULT '{}',      -- JSON: labels, transport, reported names
	firmware TEXT REFERENCES firmware(sha256) ON DELETE RESTRICT, -- NULL: newest matching
	strategy TEXT NOT NULL DEFAULT '{}',      -- JSON
	allow_downgrade INTEGER NOT NULL DEFAULT 0,
	enabled INTEGER NOT NULL DEFAULT 1,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
ALTER TABLE rollouts ADD COLUMN auto_update_id INTEGER REFERENCES auto_updates(id) ON DELETE SET NULL;
