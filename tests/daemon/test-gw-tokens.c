/* test-gw-tokens: creating, verifying, listing and revoking API tokens; secrets never stored */
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/gw-manager.h"
#include "daemon/gw-tokens.h"
#include "db/db.h"
#include "lib/macro.h"
#include "tests/tap.h"

static char dir[] = "/tmp/smpgw-test-tokens-XXXXXX";

static const char *tmp_path(const char *name)
{
	static char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static struct db *open_db(void)
{
	char err[256] = "";
	struct db *db = NULL;

	if (db_open(tmp_path("smpgw.db"), &db, err, sizeof(err)) < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	return db;
}

static void exec_sql(struct db *db, const char *q)
{
	if (sqlite3_exec(db_handle(db), q, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", q, sqlite3_errmsg(db_handle(db)));
		abort();
	}
}

/* The first column of the first row as text (static buffer), or NULL. */
static const char *query_text(struct db *db, const char *q, const char *arg)
{
	static char buf[512];
	sqlite3_stmt *st;
	const char *v = NULL;

	if (sqlite3_prepare_v2(db_handle(db), q, -1, &st, NULL) != SQLITE_OK)
		abort();
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		snprintf(buf, sizeof(buf), "%s", (const char *)sqlite3_column_text(st, 0));
		v = buf;
	}
	sqlite3_finalize(st);
	return v;
}

static long long query_int(struct db *db, const char *q, const char *arg)
{
	const char *v = query_text(db, q, arg);

	return v ? atoll(v) : -1;
}

static void sha256_hex(const char *s, char out[65])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, strlen(s), (const uint8_t *)s);
	sha256_digest(&ctx, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* Whether needle occurs in the file (a missing file holds nothing). */
static bool file_contains(const char *path, const char *needle)
{
	uint8_t *data;
	size_t len;
	bool found;

	if (access(path, F_OK) < 0)
		return false;
	data = tap_read_file(path, &len);
	found = memmem(data, len, needle, strlen(needle)) != NULL;
	free(data);
	return found;
}

static bool secret_well_formed(const char *s)
{
	if (strncmp(s, "smpgw_", 6) != 0 || strlen(s) != 6 + 43)
		return false;
	for (const char *p = s + 6; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	return true;
}

static void test_create_verify(struct db *db, struct gw_tokens *t)
{
	char *secret = NULL, *other = NULL, *name = NULL, hash[65], bad[128];
	const char *role = NULL;

	is_int(gw_tokens_create(t, "alice", "admin", &secret), 0, "create alice (admin)");
	if (!secret)
		abort();
	ok(secret_well_formed(secret), "secret is smpgw_ + 43 base64url characters: %zu long",
	   strlen(secret));
	is_int(gw_tokens_verify(t, secret, &role, &name), 0, "the secret verifies");
	is_str(role, "admin", "with its role");
	is_str(name, "alice", "and its name");
	free(name);
	name = NULL;

	/* What is stored: the hex SHA-256 of the whole secret, nothing of the secret. */
	sha256_hex(secret, hash);
	is_str(query_text(db, "SELECT hash FROM tokens WHERE name = ?1", "alice"), hash,
	       "the row holds the SHA-256 of the secret");
	exec_sql(db, "PRAGMA wal_checkpoint(FULL)");
	ok(!file_contains(tmp_path("smpgw.db"), secret + 6), "the database file lacks the secret");
	ok(!file_contains(tmp_path("smpgw.db-wal"), secret + 6), "the WAL file lacks the secret");

	/* Wrong secrets of the right shape, and malformed ones. */
	snprintf(bad, sizeof(bad), "%s", secret);
	bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'B' : 'A';
	is_int(gw_tokens_verify(t, bad, &role, &name), -EACCES, "last character changed: refused");
	snprintf(bad, sizeof(bad), "%s", secret);
	bad[10] = bad[10] == 'x' ? 'y' : 'x';
	is_int(gw_tokens_verify(t, bad, &role, &name), -EACCES, "a middle character changed: refused");
	snprintf(bad, sizeof(bad), "%.*s", (int)strlen(secret) - 1, secret);
	is_int(gw_tokens_verify(t, bad, &role, &name), -EACCES, "truncated: refused");
	snprintf(bad, sizeof(bad), "%sA", secret);
	is_int(gw_tokens_verify(t, bad, &role, &name), -EACCES, "one character more: refused");
	snprintf(bad, sizeof(bad), "SMPGW_%s", secret + 6);
	is_int(gw_tokens_verify(t, bad, &role, &name), -EACCES, "prefix in another case: refused");
	is_int(gw_tokens_verify(t, secret + 6, &role, &name), -EACCES, "without the prefix: refused");
	is_int(gw_tokens_verify(t, "smpgw_", &role, &name), -EACCES, "the prefix alone: refused");
	is_int(gw_tokens_verify(t, "", &role, &name), -EACCES, "empty: refused");
	is_int(gw_tokens_verify(t, NULL, &role, &name), -EACCES, "NULL: refused");
	is_int(gw_tokens_verify(t, hash, &role, &name), -EACCES, "the stored hash is no secret");
	snprintf(bad, sizeof(bad), "%s", secret);
	bad[20] = '=';
	is_int(gw_tokens_verify(t, bad, &role, &name), -EACCES, "a character outside base64url: refused");
	{
		char big[4096];

		memset(big, 'A', sizeof(big) - 1);
		memcpy(big, "smpgw_", 6);
		big[sizeof(big) - 1] = '\0';
		is_int(gw_tokens_verify(t, big, &role, &name), -EACCES, "overlong: refused");
	}
	ok(name == NULL, "no name handed out on refusal");

	is_int(gw_tokens_create(t, "bob", "viewer", &other), 0, "create bob (viewer)");
	ok(other && strcmp(other, secret) != 0, "another secret");
	is_int(gw_tokens_verify(t, other, &role, NULL), 0, "bob verifies (name not wanted)");
	is_str(role, "viewer", "as viewer");
	free(other);
	other = NULL;
	is_int(gw_tokens_create(t, "carol", "operator", &other), 0, "create carol (operator)");
	is_int(gw_tokens_verify(t, other, &role, &name), 0, "carol verifies");
	is_str(role, "operator", "as operator");
	free(name);
	free(other);
	free(secret);
}

static void test_bad_input(struct gw_tokens *t)
{
	static const char *const bad_names[] = {
		"", "a b", "a/b", "../x", "a\nb", "caf\xc3\xa9", "x;y", "name\x7f",
		/* 65 characters */
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	static const char *const bad_roles[] = { "", "root", "Admin", "viewer ", "operators" };
	char *secret = NULL;

	for (size_t i = 0; i < ELEMENTSOF(bad_names); i++)
		is_int(gw_tokens_create(t, bad_names[i], "viewer", &secret), -EINVAL,
		       "bad name #%zu refused", i);
	is_int(gw_tokens_create(t, NULL, "viewer", &secret), -EINVAL, "NULL name refused");
	for (size_t i = 0; i < ELEMENTSOF(bad_roles); i++)
		is_int(gw_tokens_create(t, "dave", bad_roles[i], &secret), -EINVAL,
		       "role \"%s\" refused", bad_roles[i]);
	is_int(gw_tokens_create(t, "dave", NULL, &secret), -EINVAL, "NULL role refused");
	ok(secret == NULL, "no secret handed out on refusal");

	is_int(gw_tokens_create(t, "a.b_c-D9", "viewer", &secret), 0, "name with . _ - accepted");
	free(secret);
	secret = NULL;
	is_int(gw_tokens_create(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
				"viewer", &secret), 0, "64-character name accepted");
	free(secret);
	secret = NULL;
	is_int(gw_tokens_create(t, "alice", "viewer", &secret), -EEXIST, "name taken");
	ok(secret == NULL, "no secret for a taken name");
}

static void test_revoke(struct db *db, struct gw_tokens *t)
{
	char *secret = NULL;
	const char *role = NULL;

	is_int(gw_tokens_create(t, "erin", "operator", &secret), 0, "create erin");
	is_int(gw_tokens_verify(t, secret, &role, NULL), 0, "erin verifies");
	is_int(gw_tokens_revoke(t, "erin"), 0, "revoke erin");
	is_int(gw_tokens_verify(t, secret, &role, NULL), -EACCES, "revoked: refused at once");
	ok(query_int(db, "SELECT revoked_at FROM tokens WHERE name = ?1", "erin") > 0,
	   "revoked_at recorded");
	is_int(gw_tokens_revoke(t, "erin"), -EALREADY, "revoking again: -EALREADY");
	is_int(gw_tokens_revoke(t, "nobody"), -ENOENT, "unknown name: -ENOENT");
	is_int(gw_tokens_revoke(t, "../etc"), -ENOENT, "impossible name: -ENOENT");
	free(secret);
	secret = NULL;
	is_int(gw_tokens_create(t, "erin", "operator", &secret), -EEXIST,
	       "a revoked name stays taken");
}

static void test_last_used(struct db *db, struct gw_tokens *t)
{
	char *secret = NULL, q[256];
	long long first, now;

	is_int(gw_tokens_create(t, "frank", "viewer", &secret), 0, "create frank");
	ok(query_int(db, "SELECT last_used_at FROM tokens WHERE name = ?1", "frank") == -1,
	   "never used: last_used_at is NULL");
	is_int(gw_tokens_verify(t, secret, NULL, NULL), 0, "frank verifies");
	first = query_int(db, "SELECT last_used_at FROM tokens WHERE name = ?1", "frank");
	ok(first > 0, "last_used_at set by the first use");

	/* Within the minute: no write. */
	now = (long long)gw_now_ms();
	snprintf(q, sizeof(q), "UPDATE tokens SET last_used_at = %lld WHERE name = 'frank'",
		 now - 30000);
	exec_sql(db, q);
	is_int(gw_tokens_verify(t, secret, NULL, NULL), 0, "frank verifies again");
	is_int(query_int(db, "SELECT last_used_at FROM tokens WHERE name = ?1", "frank"), now - 30000,
	       "used 30 s ago: last_used_at kept");
	/* Over a minute ago: updated. */
	snprintf(q, sizeof(q), "UPDATE tokens SET last_used_at = %lld WHERE name = 'frank'",
		 now - 61000);
	exec_sql(db, q);
	is_int(gw_tokens_verify(t, secret, NULL, NULL), 0, "frank verifies once more");
	ok(query_int(db, "SELECT last_used_at FROM tokens WHERE name = ?1", "frank") >= now,
	   "used 61 s ago: last_used_at updated");
	free(secret);
}

static void test_list(struct gw_tokens *t)
{
	json_t *list = NULL, *tok;
	char *dump;
	size_t i;
	bool shape = true, alice = false, erin = false;

	is_int(gw_tokens_list(t, &list), 0, "list");
	ok(json_is_array(list) && json_array_size(list) == 7, "7 tokens listed (%zu)",
	   json_array_size(list));
	json_array_foreach(list, i, tok) {
		shape &= json_object_size(tok) == 5 && json_is_string(json_object_get(tok, "name")) &&
			 json_is_string(json_object_get(tok, "role")) &&
			 json_is_integer(json_object_get(tok, "created_at"));
		if (strcmp(json_string_value(json_object_get(tok, "name")), "alice") == 0)
			alice = json_is_null(json_object_get(tok, "revoked_at")) &&
				json_is_integer(json_object_get(tok, "last_used_at")) &&
				strcmp(json_string_value(json_object_get(tok, "role")), "admin") == 0;
		if (strcmp(json_string_value(json_object_get(tok, "name")), "erin") == 0)
			erin = json_is_integer(json_object_get(tok, "revoked_at"));
	}
	ok(shape, "each entry: name, role, created_at, last_used_at, revoked_at only");
	ok(alice, "alice: admin, used, not revoked");
	ok(erin, "erin: revoked");
	dump = json_dumps(list, 0);
	ok(dump && !strstr(dump, "smpgw_") && !strstr(dump, "hash"),
	   "no secret and no hash in the list");
	free(dump);
	json_decref(list);
}

int main(void)
{
	struct gw_tokens *t = NULL;
	struct db *db;
	char *secret = NULL;
	const char *role;

	if (!mkdtemp(dir))
		abort();
	db = open_db();
	is_int(gw_tokens_new(db, &t), 0, "gw_tokens_new");
	test_create_verify(db, t);
	test_bad_input(t);
	test_revoke(db, t);
	test_last_used(db, t);
	test_list(t);
	is_int(gw_tokens_verify(NULL, "smpgw_x", &role, NULL), -EACCES, "no token store: refused");

	/* Tokens outlive the process. */
	is_int(gw_tokens_create(t, "grace", "admin", &secret), 0, "create grace");
	t = gw_tokens_free(t);
	db = db_close(db);
	db = open_db();
	is_int(gw_tokens_new(db, &t), 0, "reopened");
	is_int(gw_tokens_verify(t, secret, &role, NULL), 0, "grace verifies after reopening");
	free(secret);
	t = gw_tokens_free(t);
	ok(gw_tokens_free(NULL) == NULL, "gw_tokens_free(NULL)");
	db_close(db);

	unlink(tmp_path("smpgw.db"));
	unlink(tmp_path("smpgw.db-wal"));
	unlink(tmp_path("smpgw.db-shm"));
	rmdir(dir);
	return tap_done();
}
