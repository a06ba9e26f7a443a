/* test-db-rollouts: the rollouts, jobs and job_events tables through db-rollouts and db-jobs */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db-devices.h"
#include "db/db-jobs.h"
#include "db/db-rollouts.h"
#include "db/db.h"
#include "tests/tap.h"

#define FW "0ceb96b2ff430917b1effcbff4a5158545a4507ee40aecadcd9959a3f85e3e43"

static char dir[] = "/tmp/smpgw-test-db-rollouts-XXXXXX";

static struct db *open_db(void)
{
	char path[256], err[256] = "";
	struct db *db = NULL;

	snprintf(path, sizeof(path), "%s/t.db", dir);
	if (db_open(path, &db, err, sizeof(err)) < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	return db;
}

static void add_device(struct db *db, const char *id)
{
	struct db_devices *dd = NULL;
	char identity[64];
	struct db_device dev = {
		.id = id,
		.identity = identity,
		.transport = "udp",
		.address = "127.0.0.1:1",
		.name = "",
		.labels = "[]",
		.source = "api",
	};

	snprintf(identity, sizeof(identity), "udp:%s", id);
	if (db_devices_new(db, &dd) < 0 || db_devices_upsert(dd, &dev, 1000) < 0)
		abort();
	db_devices_free(dd);
}

/* The firmware row the rollouts refer to (the store's own module writes it in the daemon). */
static void add_firmware(struct db *db)
{
	if (sqlite3_exec(db_handle(db),
			 "INSERT INTO firmware (sha256, image_hash, version, size, created_at) "
			 "VALUES ('" FW "', 'c9da', '1.2.3.4', 70552, 1)",
			 NULL, NULL, NULL) != SQLITE_OK)
		abort();
}

struct rows {
	int n;
	int64_t ids[16];
	char states[16][32];
	char reasons[16][128];
	char from[16][32];
	unsigned attempts[16];
	uint64_t bytes[16];
	int stop_after; /* return -ECANCELED after this many rows (0: never) */
};

static int on_rollout(const struct db_rollout *row, void *userdata)
{
	struct rows *r = userdata;

	if (r->n < 16) {
		r->ids[r->n] = row->id;
		snprintf(r->states[r->n], sizeof(r->states[0]), "%s", row->state);
		snprintf(r->reasons[r->n], sizeof(r->reasons[0]), "%s|%s|%s|%d|%llu", row->name,
			 row->counters, row->strategy, row->canary_passed,
			 (unsigned long long)row->finished_at_ms);
	}
	r->n++;
	return r->stop_after && r->n >= r->stop_after ? -ECANCELED : 0;
}

static int on_job(const struct db_job *row, void *userdata)
{
	struct rows *r = userdata;

	if (r->n < 16) {
		r->ids[r->n] = row->id;
		snprintf(r->states[r->n], sizeof(r->states[0]), "%s", row->state);
		snprintf(r->reasons[r->n], sizeof(r->reasons[0]), "%s|%s|%s|%d", row->device_id,
			 row->reason, row->old_hash, row->canary);
		r->attempts[r->n] = row->attempt;
		r->bytes[r->n] = row->bytes_done;
	}
	r->n++;
	return r->stop_after && r->n >= r->stop_after ? -ECANCELED : 0;
}

static int on_event(const struct db_job_event *ev, void *userdata)
{
	struct rows *r = userdata;

	if (r->n < 16) {
		snprintf(r->from[r->n], sizeof(r->from[0]), "%s",
			 ev->from_state ? ev->from_state : "(null)");
		snprintf(r->states[r->n], sizeof(r->states[0]), "%s", ev->to_state);
		snprintf(r->reasons[r->n], sizeof(r->reasons[0]), "%s", ev->reason);
		r->attempts[r->n] = ev->attempt;
	}
	r->n++;
	return 0;
}

struct counts {
	uint64_t queued, connecting, succeeded, total, bytes_done, bytes_total;
};

static int on_count(const char *state, uint64_t n, uint64_t done, uint64_t total, void *userdata)
{
	struct counts *c = userdata;

	if (!strcmp(state, "queued"))
		c->queued = n;
	else if (!strcmp(state, "connecting"))
		c->connecting = n;
	else if (!strcmp(state, "succeeded"))
		c->succeeded = n;
	c->total += n;
	c->bytes_done += done;
	c->bytes_total += total;
	return 0;
}

static int64_t insert_job(struct db_jobs *dj, int64_t rollout, const char *device, bool canary,
			  int *ret)
{
	struct db_job row = {
		.rollout_id = rollout,
		.device_id = device,
		.state = "queued",
		.bytes_total = 1000,
		.reason = "created",
		.canary = canary,
	};
	int64_t id = 0;

	*ret = db_jobs_insert(dj, &row, 2000, &id);
	return id;
}

static void test_tables(void)
{
	struct db *db = open_db();
	struct db_rollouts *dr = NULL;
	struct db_jobs *dj = NULL;
	struct db_rollout ro = {
		.firmware = FW,
		.state = "running",
		.name = "night \"batch\" 'one'",
		.strategy = "{\"mode\":\"test-confirm\"}",
		.selector = "{\"devices\":[\"a\",\"b\"]}",
		.reason = "created",
	};
	struct rows rows;
	struct counts counts;
	unsigned long long writes;
	int64_t r1 = 0, r2 = 0, j1, j2, j3;
	int r;

	ok(db_rollouts_new(db, &dr) == 0 && db_jobs_new(db, &dj) == 0, "statements set up");
	is_int(db_schema_version(db), (int)db_schema_latest(), "database at the latest schema");

	is_int(db_rollouts_insert(dr, &ro, 1000, &r1), -EEXIST, "a rollout needs a known firmware");
	add_firmware(db);
	add_device(db, "a");
	add_device(db, "b");
	writes = db_write_count(db);
	is_int(db_rollouts_insert(dr, &ro, 1000, &r1), 0, "rollout inserted");
	ok(r1 > 0, "rollout id");
	is_int((int)(db_write_count(db) - writes), 1, "one write counted");

	j1 = insert_job(dj, r1, "a", true, &r);
	is_int(r, 0, "job a inserted");
	j2 = insert_job(dj, r1, "b", false, &r);
	is_int(r, 0, "job b inserted");
	is_int((int)(db_write_count(db) - writes), 5, "each job: a row and its first event");
	insert_job(dj, r1, "a", false, &r);
	is_int(r, -EEXIST, "a device is in a rollout once");
	insert_job(dj, r1, "nope", false, &r);
	is_int(r, -EEXIST, "a job needs a known device");

	is_int(db_rollouts_insert(dr, &ro, 1500, &r2), 0, "second rollout");
	insert_job(dj, r2, "a", false, &r);
	is_int(r, -EEXIST, "one active job per device across rollouts");

	/* transitions */
	struct db_job_change c = {
		.id = j1,
		.from_state = "queued",
		.to_state = "connecting",
		.reason = "connecting to the device",
		.old_hash = "abcd",
	};
	is_int(db_jobs_transition(dj, &c, 3000), 0, "transition written");
	c.id = 99999;
	is_int(db_jobs_transition(dj, &c, 3000), -ENOENT, "unknown job");
	c = (struct db_job_change){
		.id = j1,
		.from_state = "connecting",
		.to_state = "connecting",
		.attempt = 1,
		.not_before_ms = 9000,
		.bytes_done = 10,
		.reason = "retry 1 of 3 in 1.0 s: it's \"timed out\"",
		.old_hash = NULL,
	};
	is_int(db_jobs_transition(dj, &c, 4000), 0, "retry written");
	is_int(db_jobs_update_progress(dj, j1, 400, 5000), 1, "progress written");
	is_int(db_jobs_update_progress(dj, 424242, 400, 5000), 0, "progress of no job changes nothing");

	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_events(dj, j1, on_event, &rows), 3, "three events");
	is_str(rows.from[0], "(null)", "first event has no from");
	is_str(rows.states[0], "queued", "first event: queued");
	is_str(rows.from[1], "queued", "second: from queued");
	is_str(rows.states[1], "connecting", "second: to connecting");
	is_str(rows.reasons[2], "retry 1 of 3 in 1.0 s: it's \"timed out\"", "reason kept verbatim");
	is_int((int)rows.attempts[2], 1, "attempt recorded with the event");

	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_get(dj, j1, on_job, &rows), 1, "job found");
	is_str(rows.states[0], "connecting", "state");
	is_str(rows.reasons[0], "a|retry 1 of 3 in 1.0 s: it's \"timed out\"|abcd|1",
	       "device, reason, old hash kept (NULL keeps), canary");
	is_int((int)rows.attempts[0], 1, "attempt");
	is_int((int)rows.bytes[0], 400, "progress");
	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_get(dj, 77777, on_job, &rows), 0, "missing job: 0");

	/* lists and filters */
	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_load_rollout(dj, r1, on_job, &rows), 2, "rollout's jobs");
	ok(rows.ids[0] == j1 && rows.ids[1] == j2, "by id");
	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_list(dj, 0, "b", NULL, 0, 0, on_job, &rows), 1, "by device");
	ok(rows.ids[0] == j2, "device b's job");
	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_list(dj, r1, NULL, "connecting", 0, 0, on_job, &rows), 1, "by state");
	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_list(dj, r2, NULL, NULL, 0, 0, on_job, &rows), 0, "empty rollout");
	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_list(dj, 0, NULL, NULL, j1, 1, on_job, &rows), 1, "after and limit");
	ok(rows.ids[0] == j2, "the page after j1");
	memset(&rows, 0, sizeof(rows));
	rows.stop_after = 1;
	is_int(db_jobs_list(dj, 0, NULL, NULL, 0, 0, on_job, &rows), -ECANCELED,
	       "a callback's error stops the walk");
	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_list(dj, 0, NULL, NULL, 0, 0, on_job, &rows), 2, "statement usable after a stop");

	memset(&counts, 0, sizeof(counts));
	is_int(db_jobs_count(dj, r1, on_count, &counts), 2, "two states");
	ok(counts.queued == 1 && counts.connecting == 1 && counts.total == 2, "counts per state");
	ok(counts.bytes_done == 400 && counts.bytes_total == 2000, "bytes summed");

	/* a final job frees its device for another rollout */
	c = (struct db_job_change){ .id = j1, .from_state = "connecting", .to_state = "succeeded",
				    .bytes_done = 1000, .reason = "already running" };
	is_int(db_jobs_transition(dj, &c, 6000), 0, "job a succeeded");
	j3 = insert_job(dj, r2, "a", false, &r);
	is_int(r, 0, "device a takes a job in the second rollout");
	c = (struct db_job_change){ .id = j2, .from_state = "queued", .to_state = "queued",
				    .reason = "x" };
	c.id = j3;
	c.to_state = "connecting";
	is_int(db_jobs_transition(dj, &c, 6000), 0, "busy device's new job moves on");
	memset(&counts, 0, sizeof(counts));
	is_int(db_jobs_count(dj, 0, on_count, &counts), 3, "three states over every rollout");
	ok(counts.total == 3 && counts.succeeded == 1, "all rollouts counted");

	/* rollouts */
	memset(&rows, 0, sizeof(rows));
	is_int(db_rollouts_load_unfinished(dr, on_rollout, &rows), 2, "two unfinished");
	is_int(db_rollouts_update(dr, r1, "completed", "1 succeeded", true, "{\"jobs\":{}}", 7000,
				  7000),
	       1, "rollout completed");
	is_int(db_rollouts_update(dr, 31337, "paused", "", false, NULL, 0, 7000), 0,
	       "update of no rollout changes nothing");
	memset(&rows, 0, sizeof(rows));
	is_int(db_rollouts_load_unfinished(dr, on_rollout, &rows), 1, "one unfinished");
	ok(rows.ids[0] == r2, "the second");
	memset(&rows, 0, sizeof(rows));
	is_int(db_rollouts_list(dr, on_rollout, &rows), 2, "list");
	ok(rows.ids[0] == r2 && rows.ids[1] == r1, "newest first");
	is_str(rows.states[1], "completed", "state");
	is_str(rows.reasons[1],
	       "night \"batch\" 'one'|{\"jobs\":{}}|{\"mode\":\"test-confirm\"}|1|7000",
	       "name, counters, strategy, canary gate, finished_at");
	is_int(db_rollouts_update(dr, r2, "paused", "by hand", false, NULL, 0, 7100), 1, "paused");
	memset(&rows, 0, sizeof(rows));
	is_int(db_rollouts_get(dr, r2, on_rollout, &rows), 1, "get");
	is_str(rows.reasons[0], "night \"batch\" 'one'|{}|{\"mode\":\"test-confirm\"}|0|0",
	       "counters kept ({} until final), not finished");
	is_int(db_rollouts_get(dr, 999, on_rollout, &rows), 0, "get of nothing");
	is_int(db_rollouts_get(dr, r2, NULL, NULL), 1, "existence check without a callback");

	/* deleting a device takes its jobs and their events */
	if (sqlite3_exec(db_handle(db), "DELETE FROM devices WHERE id = 'a'", NULL, NULL, NULL) !=
	    SQLITE_OK)
		abort();
	memset(&rows, 0, sizeof(rows));
	is_int(db_jobs_events(dj, j1, on_event, &rows), 0, "events gone with the device");

	db_jobs_free(dj);
	db_rollouts_free(dr);
	db_close(db);
}

int main(void)
{
	if (!mkdtemp(dir))
		abort();
	test_tables();
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			tap_diag("could not remove %s", dir);
	}
	return tap_done();
}
