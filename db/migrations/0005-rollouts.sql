-- 0005: what the rollout engine needs to resume after a restart and to show
-- its work: a rollout's name, when it finished, whether its canary gate opened
-- and its job counters once final; the image a job's device ran before (to
-- tell a revert from success), whether the job is a canary; the attempt of
-- each job event; jobs by device for the API's filter.
ALTER TABLE rollouts ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE rollouts ADD COLUMN finished_at INTEGER;
ALTER TABLE rollouts ADD COLUMN canary_passed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN counters TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN canary INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN old_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE job_events ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_device ON jobs(device_id, id);
CREATE INDEX rollouts_by_state ON rollouts(state);
