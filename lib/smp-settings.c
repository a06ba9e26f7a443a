/* smp-settings: requests and response parsers of the settings group (3) */
#include <errno.h>
#include <stdlib.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-groups-internal.h"
#include "smp-settings.h"

/* Starts a request whose map holds "name" and then extra more pairs. */
static int settings_request_start(uint8_t op, uint8_t id, const char *name, size_t extra,
				  struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (!name || !*name)
		return -EINVAL;
	err = smp_request_new(op, SMP_GROUP_SETTINGS, id, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 1 + extra);
	smp_cbor_put_text(&r->pkt, "name");
	smp_cbor_put_text(&r->pkt, name);
	*ret = r;
	return 0;
}

int smp_settings_read_request(const char *name, uint32_t max_size, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	err = settings_request_start(SMP_OP_READ, SMP_SETTINGS_VALUE, name, max_size > 0, &r);
	if (err < 0)
		return err;
	if (max_size > 0) {
		smp_cbor_put_text(&r->pkt, "max_size");
		smp_cbor_put_uint(&r->pkt, max_size);
	}
	return smp_request_done(r, ret);
}

int smp_settings_write_request(const char *name, const uint8_t *val, size_t len,
			       struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (len > 0 && !val)
		return -EINVAL;
	err = settings_request_start(SMP_OP_WRITE, SMP_SETTINGS_VALUE, name, 1, &r);
	if (err < 0)
		return err;
	smp_cbor_put_text(&r->pkt, "val");
	smp_cbor_put_bytes(&r->pkt, val, len);
	return smp_request_done(r, ret);
}

int smp_settings_delete_request(const char *name, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	err = settings_request_start(SMP_OP_WRITE, SMP_SETTINGS_DELETE, name, 0, &r);
	if (err < 0)
		return err;
	return smp_request_done(r, ret);
}

int smp_settings_commit_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_WRITE, SMP_GROUP_SETTINGS, SMP_SETTINGS_COMMIT, ret);
}

int smp_settings_load_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_SETTINGS, SMP_SETTINGS_LOAD_SAVE, ret);
}

int smp_settings_save_request(const char *name, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (!name)
		return smp_request_new_empty(SMP_OP_WRITE, SMP_GROUP_SETTINGS,
					     SMP_SETTINGS_LOAD_SAVE, ret);
	err = settings_request_start(SMP_OP_WRITE, SMP_SETTINGS_LOAD_SAVE, name, 0, &r);
	if (err < 0)
		return err;
	return smp_request_done(r, ret);
}

struct smp_settings_value *smp_settings_value_free(struct smp_settings_value *v)
{
	if (v) {
		free(v->val);
		free(v);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_settings_value *, smp_settings_value_free);

int smp_settings_read_parse(const struct smp_response *rsp, struct smp_settings_value **ret)
{
	_cleanup_(smp_settings_value_freep) struct smp_settings_value *v = NULL;
	const cbor_item_t *root;
	uint64_t max;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	r = smp_groups_req_bytes(root, "val", &v->val, &v->len);
	if (r < 0)
		return r;
	r = smp_groups_opt_uint(root, "max_size", UINT32_MAX, &max);
	if (r < 0)
		return r;
	v->has_max_size = r > 0;
	v->max_size = r > 0 ? (uint32_t)max : 0;
	*ret = TAKE_PTR(v);
	return 0;
}
