/* sim-settings: Zephyr's settings subsystem: runtime values, persistent storage, handlers */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "sim-device.h"
#include "sim-settings.h"
#include "sim-util.h"
#include "smp-cbor.h"
#include "smp-error.h"

/* CONFIG_MCUMGR_GRP_SETTINGS_NAME_LEN and _VALUE_LEN defaults. */
#define SIM_SETTINGS_NAME_LEN 32
#define SIM_SETTINGS_VALUE_LEN 32
/* Keeps a hostile client from growing the store without bound. */
#define SIM_SETTINGS_MAX_ENTRIES 256
#define SIM_SETTINGS_MAX_VALUE 1024

struct sim_kv {
	char *name;
	uint8_t *val;
	size_t len;
};

struct sim_kv_table {
	struct sim_kv *v;
	size_t n;
};

struct sim_settings {
	char *path;
	struct sim_kv_table runtime;
	struct sim_kv_table storage;
	char **identity; /* key, value, ..., NULL */
};

enum sim_root_kind {
	SIM_ROOT_RW,
	SIM_ROOT_RO,
	SIM_ROOT_WO,
};

static const struct {
	const char *name;
	enum sim_root_kind kind;
} sim_roots[] = {
    {"app", SIM_ROOT_RW},
    {"peer", SIM_ROOT_RW},
    {"id", SIM_ROOT_RO},
    {"secret", SIM_ROOT_WO},
};

static void sim_kv_table_clear(struct sim_kv_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].name);
		free(t->v[i].val);
	}
	free(t->v);
	*t = (struct sim_kv_table){0};
}

static struct sim_kv *sim_kv_find(struct sim_kv_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name))
			return &t->v[i];
	return NULL;
}

static int sim_kv_set(struct sim_kv_table *t, const char *name, const uint8_t *val, size_t len)
{
	struct sim_kv *kv = sim_kv_find(t, name);
	uint8_t *copy;

	if (!kv && t->n >= SIM_SETTINGS_MAX_ENTRIES)
		return -ENOSPC;
	if (len > SIM_SETTINGS_MAX_VALUE)
		return -EINVAL;
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, val, len);
	if (!kv) {
		struct sim_kv *nv = realloc(t->v, (t->n + 1) * sizeof(*nv));
		char *n = strdup(name);

		if (!nv || !n) {
			free(n);
			free(copy);
			if (nv)
				t->v = nv;
			return -ENOMEM;
		}
		t->v = nv;
		kv = &t->v[t->n++];
		kv->name = n;
		kv->val = NULL;
	}
	free(kv->val);
	kv->val = copy;
	kv->len = len;
	return 0;
}

static void sim_kv_del(struct sim_kv_table *t, const char *name)
{
	struct sim_kv *kv = sim_kv_find(t, name);

	if (!kv)
		return;
	free(kv->name);
	free(kv->val);
	*kv = t->v[--t->n];
}

/* Storage file: one "name<TAB>hex value" line per key. */
static int sim_settings_persist(struct sim_settings *s)
{
	_cleanup_free_ char *buf = NULL;
	size_t cap = 1, n = 0;

	if (!s->path)
		return 0;
	for (size_t i = 0; i < s->storage.n; i++)
		cap += strlen(s->storage.v[i].name) + 2 * s->storage.v[i].len + 2;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < s->storage.n; i++) {
		const struct sim_kv *kv = &s->storage.v[i];

		n += (size_t)sprintf(buf + n, "%s\t", kv->name);
		for (size_t j = 0; j < kv->len; j++)
			n += (size_t)sprintf(buf + n, "%02x", kv->val[j]);
		buf[n++] = '\n';
	}
	return sim_write_file_atomic(s->path, buf, n);
}

static int sim_settings_restore(struct sim_settings *s)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	char *line, *save = NULL;
	int r;

	r = sim_read_file(s->path, 1 << 20, &data, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	data[len] = 0;
	for (line = strtok_r((char *)data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t');
		_cleanup_free_ uint8_t *val = NULL;
		size_t hex_len, vlen;

		if (!tab)
			return -EBADMSG;
		*tab++ = 0;
		hex_len = strlen(tab);
		if (hex_len % 2 || !*line)
			return -EBADMSG;
		vlen = hex_len / 2;
		val = malloc(vlen + 1);
		if (!val)
			return -ENOMEM;
		for (size_t i = 0; i < vlen; i++) {
			unsigned b;

			if (sscanf(tab + 2 * i, "%2x", &b) != 1)
				return -EBADMSG;
			val[i] = (uint8_t)b;
		}
		r = sim_kv_set(&s->storage, line, val, vlen);
		if (r < 0)
			return r;
	}
	return 0;
}

int sim_settings_new(const char *path, const char *const *identity, struct sim_settings **ret)
{
	struct sim_settings *s = calloc(1, sizeof(*s));
	size_t n = 0;
	int r;

	if (!s)
		return -ENOMEM;
	while (identity && identity[n])
		n++;
	s->identity = calloc(n + 1, sizeof(char *));
	if (!s->identity) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		s->identity[i] = strdup(identity[i]);
		if (!s->identity[i]) {
			r = -ENOMEM;
			goto fail;
		}
	}
	if (path) {
		s->path = strdup(path);
		if (!s->path) {
			r = -ENOMEM;
			goto fail;
		}
		r = sim_settings_restore(s);
		if (r < 0)
			goto fail;
	}
	sim_settings_boot(s);
	*ret = s;
	return 0;
fail:
	sim_settings_free(s);
	return r;
}

struct sim_settings *sim_settings_free(struct sim_settings *s)
{
	if (!s)
		return NULL;
	sim_kv_table_clear(&s->runtime);
	sim_kv_table_clear(&s->storage);
	for (size_t i = 0; s->identity && s->identity[i]; i++)
		free(s->identity[i]);
	free(s->identity);
	free(s->path);
	free(s);
	return NULL;
}

/* settings_parse_and_lookup(): the root handling name, or -1. */
static int sim_settings_root(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(sim_roots); i++) {
		size_t n = strlen(sim_roots[i].name);

		if (!strncmp(name, sim_roots[i].name, n) && (name[n] == 0 || name[n] == '/'))
			return (int)i;
	}
	return -1;
}

/* settings_load(): every stored value goes through its handler's h_set. */
static void sim_settings_load_storage(struct sim_settings *s)
{
	for (size_t i = 0; i < s->storage.n; i++) {
		const struct sim_kv *kv = &s->storage.v[i];
		int root = sim_settings_root(kv->name);

		if (root >= 0 && sim_roots[root].kind != SIM_ROOT_RO)
			(void)sim_kv_set(&s->runtime, kv->name, kv->val, kv->len);
	}
}

void sim_settings_boot(struct sim_settings *s)
{
	sim_kv_table_clear(&s->runtime);
	for (size_t i = 0; s->identity[i] && s->identity[i + 1]; i += 2) {
		_cleanup_free_ char *name = sim_strdup_printf("id/%s", s->identity[i]);

		if (name)
			(void)sim_kv_set(&s->runtime, name, (const uint8_t *)s->identity[i + 1],
					 strlen(s->identity[i + 1]));
	}
	sim_settings_load_storage(s);
}

int sim_settings_erase_storage(struct sim_settings *s)
{
	sim_kv_table_clear(&s->storage);
	return sim_settings_persist(s);
}

/* Decodes "name" as all settings handlers do; 0 with a NUL-terminated copy
 * in name, or the code to return. */
static int sim_settings_name(struct sim_ctx *c, char name[static SIM_SETTINGS_NAME_LEN])
{
	const char *key = NULL;
	size_t len = 0;

	if (!sim_req_text(c, "name", &key, &len, NULL) || len == 0)
		return SMP_RC_EINVAL;
	if (len >= SIM_SETTINGS_NAME_LEN) {
		sim_rsp_err(c, SMP_GROUP_SETTINGS, SIM_SETTINGS_ERR_KEY_TOO_LONG);
		return 1;
	}
	if (memchr(key, 0, len)) {
		/* The C string ends at the NUL: a different, shorter name. */
		len = strlen(key);
	}
	memcpy(name, key, len);
	name[len] = 0;
	return 0;
}

int sim_settings_read(struct sim_ctx *c)
{
	struct sim_settings *s = sim_device_settings(c->dev);
	char name[SIM_SETTINGS_NAME_LEN];
	uint32_t max_size = SIM_SETTINGS_VALUE_LEN;
	bool limited = false;
	const struct sim_kv *kv;
	int root, r;

	if (!sim_req_u32(c, "max_size", &max_size, NULL))
		return SMP_RC_EINVAL;
	r = sim_settings_name(c, name);
	if (r != 0)
		return r == 1 ? 0 : r;
	if (max_size > SIM_SETTINGS_VALUE_LEN) {
		max_size = SIM_SETTINGS_VALUE_LEN;
		limited = true;
	}
	root = sim_settings_root(name);
	if (root < 0) {
		sim_rsp_err(c, SMP_GROUP_SETTINGS, SIM_SETTINGS_ERR_ROOT_KEY_NOT_FOUND);
		return 0;
	}
	if (sim_roots[root].kind == SIM_ROOT_WO) {
		sim_rsp_err(c, SMP_GROUP_SETTINGS, SIM_SETTINGS_ERR_READ_NOT_SUPPORTED);
		return 0;
	}
	kv = sim_kv_find(&s->runtime, name);
	if (!kv) {
		sim_rsp_err(c, SMP_GROUP_SETTINGS, SIM_SETTINGS_ERR_KEY_NOT_FOUND);
		return 0;
	}
	smp_cbor_put_text(&c->rsp, "val");
	smp_cbor_put_bytes(&c->rsp, kv->val, MIN(kv->len, (size_t)max_size));
	if (limited) {
		smp_cbor_put_text(&c->rsp, "max_size");
		smp_cbor_put_uint(&c->rsp, SIM_SETTINGS_VALUE_LEN);
	}
	return 0;
}

int sim_settings_write(struct sim_ctx *c)
{
	struct sim_settings *s = sim_device_settings(c->dev);
	char name[SIM_SETTINGS_NAME_LEN];
	const uint8_t *val = NULL;
	size_t len = 0;
	int root, r;

	if (!sim_req_bytes(c, "val", &val, &len, NULL))
		return SMP_RC_EINVAL;
	r = sim_settings_name(c, name);
	if (r != 0)
		return r == 1 ? 0 : r;
	root = sim_settings_root(name);
	if (root < 0) {
		sim_rsp_err(c, SMP_GROUP_SETTINGS, SIM_SETTINGS_ERR_ROOT_KEY_NOT_FOUND);
		return 0;
	}
	if (sim_roots[root].kind == SIM_ROOT_RO) {
		sim_rsp_err(c, SMP_GROUP_SETTINGS, SIM_SETTINGS_ERR_WRITE_NOT_SUPPORTED);
		return 0;
	}
	r = sim_kv_set(&s->runtime, name, val, len);
	if (r == -ENOMEM)
		return SMP_RC_ENOMEM;
	if (r < 0)
		sim_rsp_err(c, SMP_GROUP_SETTINGS, 1 /* UNKNOWN: the handler refused */);
	return 0;
}

int sim_settings_delete(struct sim_ctx *c)
{
	struct sim_settings *s = sim_device_settings(c->dev);
	char name[SIM_SETTINGS_NAME_LEN];
	int r;

	r = sim_settings_name(c, name);
	if (r != 0)
		return r == 1 ? 0 : r;
	/* settings_delete() reaches the storage backend only; the handler's
	 * RAM copy stays until the next boot. Deleting a missing key is fine. */
	sim_kv_del(&s->storage, name);
	if (sim_settings_persist(s) < 0)
		sim_rsp_err(c, SMP_GROUP_SETTINGS, 1);
	return 0;
}

int sim_settings_commit(struct sim_ctx *c)
{
	return 0;
}

int sim_settings_load(struct sim_ctx *c)
{
	sim_settings_load_storage(sim_device_settings(c->dev));
	return 0;
}

int sim_settings_save(struct sim_ctx *c)
{
	struct sim_settings *s = sim_device_settings(c->dev);

	/* settings_save(): every handler with h_export writes its values. */
	for (size_t i = 0; i < s->runtime.n; i++) {
		const struct sim_kv *kv = &s->runtime.v[i];
		int root = sim_settings_root(kv->name);

		if (root < 0 || sim_roots[root].kind == SIM_ROOT_RO)
			continue;
		if (sim_kv_set(&s->storage, kv->name, kv->val, kv->len) == -ENOMEM)
			return SMP_RC_ENOMEM;
	}
	(void)sim_settings_persist(s);
	return 0;
}
