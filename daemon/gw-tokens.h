/* gw-tokens: API bearer tokens: created once, stored as SHA-256 hashes, checked in constant time */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct db;
struct gw_tokens;

/* Roles as stored: "viewer", "operator", "admin". */

/* Returns 0 or -errno. Uses db/db-tokens. */
int gw_tokens_new(struct db *db, struct gw_tokens **ret);
struct gw_tokens *gw_tokens_free(struct gw_tokens *t);

/* Creates a token: 32 random bytes (getrandom) as "smpgw_" + base64url
 * (nettle), stored as the hex SHA-256 of that whole string. *ret_secret
 * (malloc'd) is the only copy of the secret: the caller shows it once.
 * Returns 0, -EEXIST when the name is taken (revoked names too), -EINVAL for
 * a bad role or a name that is empty, longer than 64 bytes or not
 * [A-Za-z0-9._-], -ENOMEM, -EIO. */
int gw_tokens_create(struct gw_tokens *t, const char *name, const char *role, char **ret_secret);
/* Whether name is one a token can have (1..64 bytes of [A-Za-z0-9._-]). */
bool gw_tokens_name_valid(const char *name);
/* Revokes by name; it stops working at once. Returns 0, -ENOENT, -EALREADY. */
int gw_tokens_revoke(struct gw_tokens *t, const char *name);
/* [{"name","role","created_at","last_used_at","revoked_at"}] (times in ms or null); never secrets or hashes. */
int gw_tokens_list(struct gw_tokens *t, json_t **ret);

/* Checks a secret: hashes it, looks the hash up, and compares the stored
 * hash in constant time. Returns 0 with the role ("viewer", "operator",
 * "admin"; static string) and name (malloc'd) of a live token; -EACCES
 * otherwise (unknown, revoked, malformed or overlong input). last_used_at is
 * updated at most once a minute per token. */
int gw_tokens_verify(struct gw_tokens *t, const char *secret, const char **ret_role,
		     char **ret_name);
