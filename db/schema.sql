-- smpgw schema, as the migrations in db/migrations leave it (checked by tests/db/test-db).
CREATE TABLE devices (
	id TEXT PRIMARY KEY,                  -- URL-safe, stable: derived from identity
	identity TEXT NOT NULL UNIQUE,        -- "ble:AA:BB:..", "usb:<serial>", "tty:<path>", "udp:<host>:<port>"
	transport TEXT NOT NULL CHECK (transport IN ('udp', 'serial', 'ble')),
	address TEXT NOT NULL,                -- what the transport connects to
	name TEXT NOT NULL DEFAULT '',
	labels TEXT NOT NULL DEFAULT '[]',    -- JSON array of strings
	source TEXT NOT NULL CHECK (source IN ('config', 'discovered', 'api')),
	online INTEGER NOT NULL DEFAULT 0,
	last_seen INTEGER,                    -- unix milliseconds
	rssi INTEGER,
	reported TEXT NOT NULL DEFAULT '{}',  -- JSON: os/app info, params, image state, bootloader
	reported_at INTEGER,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	baud INTEGER NOT NULL DEFAULT 0,      -- serial only; 0: the [serial] baud
	name_pinned INTEGER NOT NULL DEFAULT 0,   -- name set by config or API: discovery keeps off
	labels_pinned INTEGER NOT NULL DEFAULT 0  -- labels set by config or API: discovery keeps off
);

CREATE TABLE firmware (
	sha256 TEXT PRIMARY KEY,              -- of the whole file (upload "sha"), hex
	image_hash TEXT NOT NULL,             -- SHA-256 TLV, hex: what the device reports
	version TEXT NOT NULL,                -- as SMP reports it: 1.2.3 or 1.2.3.4
	size INTEGER NOT NULL,
	name TEXT NOT NULL DEFAULT '',
	metadata TEXT NOT NULL DEFAULT '{}',  -- JSON: header fields, TLVs
	created_at INTEGER NOT NULL,
	deleted_at INTEGER                    -- removed, kept for the rollouts and rules naming it
);

CREATE TABLE rollouts (
	id INTEGER PRIMARY KEY,
	firmware TEXT NOT NULL REFERENCES firmware(sha256) ON DELETE RESTRICT,
	state TEXT NOT NULL,
	strategy TEXT NOT NULL DEFAULT '{}',  -- JSON
	selector TEXT NOT NULL DEFAULT '{}',  -- JSON
	reason TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	auto_update_id INTEGER REFERENCES auto_updates(id) ON DELETE SET NULL,
	name TEXT NOT NULL DEFAULT '',
	finished_at INTEGER,                  -- unix milliseconds; NULL while not final
	canary_passed INTEGER NOT NULL DEFAULT 0, -- every canary succeeded, or resumed by hand
	counters TEXT NOT NULL DEFAULT '{}'   -- JSON, once final: jobs per state, bytes
);
CREATE INDEX rollouts_by_state ON rollouts(state);

CREATE TABLE jobs (
	id INTEGER PRIMARY KEY,
	rollout_id INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
	device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	state TEXT NOT NULL,
	attempt INTEGER NOT NULL DEFAULT 0,
	not_before INTEGER NOT NULL DEFAULT 0, -- retry backoff, unix milliseconds
	bytes_done INTEGER NOT NULL DEFAULT 0,
	bytes_total INTEGER NOT NULL DEFAULT 0,
	reason TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	canary INTEGER NOT NULL DEFAULT 0,
	old_hash TEXT NOT NULL DEFAULT '',    -- image hash (hex) the device ran before: a revert goes back to it
	UNIQUE (rollout_id, device_id)
);
CREATE INDEX jobs_by_state ON jobs(state);
CREATE INDEX jobs_by_device ON jobs(device_id, id);
-- One job per device at a time: at most one job not in a final state.
CREATE UNIQUE INDEX jobs_one_active_per_device ON jobs(device_id)
	WHERE state NOT IN ('succeeded', 'failed', 'rolled_back', 'canceled');

CREATE TABLE job_events (
	id INTEGER PRIMARY KEY,
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	at INTEGER NOT NULL,
	from_state TEXT,
	to_state TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	attempt INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX job_events_by_job ON job_events(job_id, id);

CREATE TABLE tokens (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
	hash TEXT NOT NULL UNIQUE,            -- SHA-256 of the secret, hex; the secret is never stored
	created_at INTEGER NOT NULL,
	last_used_at INTEGER,
	revoked_at INTEGER
);

CREATE TABLE auto_updates (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL DEFAULT '',
	selector TEXT NOT NULL DEFAULT '{}',      -- JSON: labels, transport, reported names
	firmware TEXT REFERENCES firmware(sha256) ON DELETE RESTRICT, -- NULL: newest matching
	strategy TEXT NOT NULL DEFAULT '{}',      -- JSON
	allow_downgrade INTEGER NOT NULL DEFAULT 0,
	enabled INTEGER NOT NULL DEFAULT 1,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	image_name TEXT                           -- glob on firmware.name when firmware is NULL; NULL: any
);
