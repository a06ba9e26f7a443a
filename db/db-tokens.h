/* db-tokens: the tokens table: API bearer tokens as hashes, their roles, use and revocation */
#pragma once

#include <stdint.h>

struct db;
struct db_tokens;

/* One row. Strings handed to a callback live until it returns (they point
 * into sqlite's row): copy what you keep. Times are unix milliseconds, 0 for
 * NULL ("never"). */
struct db_token {
	int64_t id;
	const char *name;
	const char *role;  /* "viewer", "operator", "admin" */
	const char *hash;  /* hex SHA-256 of the secret */
	uint64_t created_at_ms;
	uint64_t last_used_at_ms;
	uint64_t revoked_at_ms;
};

typedef int (*db_tokens_row_fn)(const struct db_token *row, void *userdata);

/* The statements on the tokens table, prepared at first use and kept until
 * db_tokens_free(), which must run before db_close(). db is borrowed. */
int db_tokens_new(struct db *db, struct db_tokens **ret);
struct db_tokens *db_tokens_free(struct db_tokens *dt);

/* Inserts a token. Returns 0, -EEXIST when the name (or the hash) is
 * taken, -EINVAL for a role the table refuses, -EBUSY, -EIO. */
int db_tokens_insert(struct db_tokens *dt, const char *name, const char *role, const char *hash,
		     uint64_t now_ms);

/* Calls cb for every row in creation order; a negative return from cb stops
 * the walk and is returned. Returns the number of rows or -errno. */
int db_tokens_load(struct db_tokens *dt, db_tokens_row_fn cb, void *userdata);

/* Calls cb with the row holding this hash (revoked or not). Returns cb's
 * return (>= 0), -ENOENT when no row has it, or -errno. */
int db_tokens_find_hash(struct db_tokens *dt, const char *hash, db_tokens_row_fn cb,
			void *userdata);

/* Sets revoked_at on the named token. Returns 0, -ENOENT for an unknown name,
 * -EALREADY when it was revoked before. */
int db_tokens_revoke(struct db_tokens *dt, const char *name, uint64_t now_ms);

/* Sets last_used_at of the token with this id. Returns 0, -ENOENT, -errno. */
int db_tokens_touch(struct db_tokens *dt, int64_t id, uint64_t now_ms);
