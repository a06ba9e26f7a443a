-- A database as smpgw schema version 1 left it, with rows, for the migration test.
PRAGMA application_id = 1397575751;
PRAGMA user_version = 1;
CREATE TABLE devices (
	id TEXT PRIMARY KEY,
	identity TEXT NOT NULL UNIQUE,
	transport TEXT NOT NULL CHECK (transport IN ('udp', 'serial', 'ble')),
	address TEXT NOT NULL,
	name TEXT NOT NULL DEFAULT '',
	labels TEXT NOT NULL DEFAULT '[]',
	source TEXT NOT NULL CHECK (source IN ('config', 'discovered', 'api')),
	online INTEGER NOT NULL DEFAULT 0,
	last_seen INTEGER,
	rssi INTEGER,
	reported TEXT NOT NULL DEFAULT '{}',
	reported_at INTEGER,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE TABLE firmware (
	sha256 TEXT PRIMARY KEY,
	image_hash TEXT NOT NULL,
	version TEXT NOT NULL,
	size INTEGER NOT NULL,
	name TEXT NOT NULL DEFAULT '',
	metadata TEXT NOT NULL DEFAULT '{}',
	created_at INTEGER NOT NULL
);
CREATE TABLE rollouts (
	id INTEGER PRIMARY KEY,
	firmware TEXT NOT NULL REFERENCES firmware(sha256) ON DELETE RESTRICT,
	state TEXT NOT NULL,
	strategy TEXT NOT NULL DEFAULT '{}',
	selector TEXT NOT NULL DEFAULT '{}',
	reason TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE TABLE jobs (
	id INTEGER PRIMARY KEY,
	rollout_id INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
	device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	state TEXT NOT NULL,
	attempt INTEGER NOT NULL DEFAULT 0,
	not_before INTEGER NOT NULL DEFAULT 0,
	bytes_done INTEGER NOT NULL DEFAULT 0,
	bytes_total INTEGER NOT NULL DEFAULT 0,
	reason TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (rollout_id, device_id)
);
CREATE INDEX jobs_by_state ON jobs(state);
CREATE UNIQUE INDEX jobs_one_active_per_device ON jobs(device_id)
	WHERE state NOT IN ('succeeded', 'failed', 'rolled_back', 'canceled');
CREATE TABLE job_events (
	id INTEGER PRIMARY KEY,
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	at INTEGER NOT NULL,
	from_state TEXT,
	to_state TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_events_by_job ON job_events(job_id, id);
CREATE TABLE tokens (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
	hash TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	last_used_at INTEGER,
	revoked_at INTEGER
);
INSERT INTO devices (id, identity, transport, address, name, labels, source, online, created_at, updated_at)
	VALUES ('udp-127-0-0-1-1337', 'udp:127.0.0.1:1337', 'udp', '127.0.0.1:1337', 'kitchen', '["lab"]', 'config', 0, 1700000000000, 1700000000000);
INSERT INTO firmware VALUES ('0ceb96b2ff430917b1effcbff4a5158545a4507ee40aecadcd9959a3f85e3e43',
	'c9da53bf046449a5d7c7e63f8f5ee93dac583efe2bd12524ad64023e3dbe8240', '1.2.3.4', 70552, 'demo', '{}', 1700000000000);
INSERT INTO rollouts (id, firmware, state, created_at, updated_at)
	VALUES (1, '0ceb96b2ff430917b1effcbff4a5158545a4507ee40aecadcd9959a3f85e3e43', 'running', 1700000000000, 1700000000000);
INSERT INTO jobs (id, rollout_id, device_id, state, bytes_done, bytes_total, created_at, updated_at)
	VALUES (1, 1, 'udp-127-0-0-1-1337', 'uploading', 4096, 70552, 1700000000000, 1700000000000);
INSERT INTO job_events (job_id, at, from_state, to_state, reason) VALUES (1, 1700000000000, NULL, 'queued', 'created');
INSERT INTO tokens (name, role, hash, created_at) VALUES ('ops', 'operator', 'aa', 1700000000000);
