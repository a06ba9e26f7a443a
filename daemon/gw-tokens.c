/* gw-tokens: API bearer tokens: created once, stored as SHA-256 hashes, checked in constant time */
#include <errno.h>
#include <nettle/base64.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "daemon/gw-manager.h"
#include "daemon/gw-tokens.h"
#include "db/db-tokens.h"
#include "lib/macro.h"

#define TOKEN_PREFIX "smpgw_"
#define TOKEN_RANDOM_BYTES 32
#define TOKEN_NAME_MAX 64
/* Ours are 49 characters; anything much longer is not one of ours and is
 * refused before hashing. */
#define TOKEN_SECRET_MAX 128
#define TOKEN_HASH_HEX (SHA256_DIGEST_SIZE * 2)
#define TOKEN_TOUCH_INTERVAL_MS (60 * 1000)

struct gw_tokens {
	struct db_tokens *dt;
};

static const char *const token_roles[] = { "viewer", "operator", "admin" };

/* The static spelling of a role, or NULL. */
static const char *tokens_role(const char *s)
{
	for (size_t i = 0; i < ELEMENTSOF(token_roles); i++)
		if (strcmp(s, token_roles[i]) == 0)
			return token_roles[i];
	return NULL;
}

bool gw_tokens_name_valid(const char *name)
{
	size_t n = name ? strnlen(name, TOKEN_NAME_MAX + 1) : 0;

	if (n == 0 || n > TOKEN_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

static void tokens_hash(const char *secret, char hex[static TOKEN_HASH_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t d[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, strlen(secret), (const uint8_t *)secret);
	sha256_digest(&ctx, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 0xf];
	}
	hex[TOKEN_HASH_HEX] = '\0';
}

int gw_tokens_new(struct db *db, struct gw_tokens **ret)
{
	struct gw_tokens *t;
	int r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	r = db_tokens_new(db, &t->dt);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret = t;
	return 0;
}

struct gw_tokens *gw_tokens_free(struct gw_tokens *t)
{
	if (t) {
		db_tokens_free(t->dt);
		free(t);
	}
	return NULL;
}

/* 32 random bytes as "smpgw_" + unpadded base64url: 49 characters that are
 * safe in a header, a URL and a shell. */
static int tokens_make_secret(char **ret)
{
	uint8_t raw[TOKEN_RANDOM_BYTES];
	struct base64_encode_ctx ctx;
	size_t prefix = strlen(TOKEN_PREFIX), n;
	char *s;

	for (size_t got = 0; got < sizeof(raw);) {
		ssize_t k = getrandom(raw + got, sizeof(raw) - got, 0);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)k;
	}
	s = malloc(prefix + BASE64_ENCODE_LENGTH(sizeof(raw)) + BASE64_ENCODE_FINAL_LENGTH + 1);
	if (!s) {
		explicit_bzero(raw, sizeof(raw));
		return -ENOMEM;
	}
	memcpy(s, TOKEN_PREFIX, prefix);
	base64url_encode_init(&ctx);
	n = prefix + base64_encode_update(&ctx, s + prefix, sizeof(raw), raw);
	n += base64_encode_final(&ctx, s + n);
	explicit_bzero(raw, sizeof(raw));
	while (n > prefix && s[n - 1] == '=')
		n--;
	s[n] = '\0';
	*ret = s;
	return 0;
}

int gw_tokens_create(struct gw_tokens *t, const char *name, const char *role, char **ret_secret)
{
	char hash[TOKEN_HASH_HEX + 1];
	const char *r_static;
	char *secret = NULL;
	int r;

	if (!role || !gw_tokens_name_valid(name))
		return -EINVAL;
	r_static = tokens_role(role);
	if (!r_static)
		return -EINVAL;
	r = tokens_make_secret(&secret);
	if (r < 0)
		return r;
	tokens_hash(secret, hash);
	r = db_tokens_insert(t->dt, name, r_static, hash, gw_now_ms());
	if (r < 0) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
		/* A colliding hash would mean a broken random source: not "name taken". */
		return r == -EEXIST || r == -ENOMEM ? r : -EIO;
	}
	*ret_secret = secret;
	return 0;
}

int gw_tokens_revoke(struct gw_tokens *t, const char *name)
{
	int r;

	if (!gw_tokens_name_valid(name))
		return -ENOENT;
	r = db_tokens_revoke(t->dt, name, gw_now_ms());
	if (r < 0 && r != -ENOENT && r != -EALREADY && r != -ENOMEM)
		return -EIO;
	return r;
}

static json_t *tokens_time(uint64_t ms)
{
	return ms ? json_integer((json_int_t)ms) : json_null();
}

static int tokens_on_list_row(const struct db_token *row, void *userdata)
{
	json_t *list = userdata, *o;

	o = json_pack("{s:s, s:s, s:o, s:o, s:o}", "name", row->name, "role", row->role,
		      "created_at", tokens_time(row->created_at_ms), "last_used_at",
		      tokens_time(row->last_used_at_ms), "revoked_at", tokens_time(row->revoked_at_ms));
	if (!o || json_array_append_new(list, o) < 0)
		return -ENOMEM;
	return 0;
}

int gw_tokens_list(struct gw_tokens *t, json_t **ret)
{
	json_t *list = json_array();
	int r;

	if (!list)
		return -ENOMEM;
	r = db_tokens_load(t->dt, tokens_on_list_row, list);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*ret = list;
	return 0;
}

struct tokens_match {
	const char *hash;
	const char *role; /* static */
	char *name;
	int64_t id;
	uint64_t last_used_at_ms;
};

static int tokens_on_match(const struct db_token *row, void *userdata)
{
	struct tokens_match *m = userdata;

	/* The lookup found the row by its hash; comparing again without an
	 * early exit keeps what a timing probe could learn to nothing, even
	 * should the lookup ever become a prefix or collation match. */
	if (strlen(row->hash) != TOKEN_HASH_HEX ||
	    !memeql_sec(row->hash, m->hash, TOKEN_HASH_HEX) || row->revoked_at_ms)
		return -EACCES;
	m->role = tokens_role(row->role);
	if (!m->role)
		return -EACCES;
	m->name = strdup(row->name);
	if (!m->name)
		return -ENOMEM;
	m->id = row->id;
	m->last_used_at_ms = row->last_used_at_ms;
	return 0;
}

static bool tokens_secret_well_formed(const char *secret)
{
	size_t n = strnlen(secret, TOKEN_SECRET_MAX + 1), prefix = strlen(TOKEN_PREFIX);

	if (n > TOKEN_SECRET_MAX || n <= prefix || strncmp(secret, TOKEN_PREFIX, prefix) != 0)
		return false;
	for (const char *p = secret + prefix; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	return true;
}

int gw_tokens_verify(struct gw_tokens *t, const char *secret, const char **ret_role,
		     char **ret_name)
{
	char hash[TOKEN_HASH_HEX + 1];
	struct tokens_match m = { .hash = hash };
	uint64_t now;
	int r;

	if (!t || !secret || !tokens_secret_well_formed(secret))
		return -EACCES;
	tokens_hash(secret, hash);
	r = db_tokens_find_hash(t->dt, hash, tokens_on_match, &m);
	if (r < 0) {
		free(m.name);
		return r == -ENOMEM ? r : -EACCES;
	}
	now = gw_now_ms();
	/* One write a minute at most per token, not one per request; a failed
	 * write only loses the timestamp. */
	if (!m.last_used_at_ms || now < m.last_used_at_ms ||
	    now - m.last_used_at_ms >= TOKEN_TOUCH_INTERVAL_MS)
		db_tokens_touch(t->dt, m.id, now);
	if (ret_role)
		*ret_role = m.role;
	if (ret_name)
		*ret_name = m.name;
	else
		free(m.name);
	return 0;
}
