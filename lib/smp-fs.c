/* smp-fs: requests and response parsers of the file system group (8) */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-fs.h"
#include "smp-groups-internal.h"

static int fs_name_request(uint8_t op, uint8_t id, const char *name, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (!name || !*name)
		return -EINVAL;
	err = smp_request_new(op, SMP_GROUP_FS, id, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 1);
	smp_cbor_put_text(&r->pkt, "name");
	smp_cbor_put_text(&r->pkt, name);
	return smp_request_done(r, ret);
}

/* ---- download -------------------------------------------------------------------- */

int smp_fs_download_request(const char *name, uint64_t off, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (!name || !*name)
		return -EINVAL;
	err = smp_request_new(SMP_OP_READ, SMP_GROUP_FS, SMP_FS_FILE, &r);
	if (err < 0)
		return err;
	/* smp-protocol.md V26 order; Zephyr 4.1's own client sent name first. */
	smp_cbor_put_map(&r->pkt, 2);
	smp_cbor_put_text(&r->pkt, "off");
	smp_cbor_put_uint(&r->pkt, off);
	smp_cbor_put_text(&r->pkt, "name");
	smp_cbor_put_text(&r->pkt, name);
	return smp_request_done(r, ret);
}

struct smp_fs_download *smp_fs_download_free(struct smp_fs_download *d)
{
	free(d);
	return NULL;
}

int smp_fs_download_parse(const struct smp_response *rsp, struct smp_fs_download **ret)
{
	struct smp_fs_download *d;
	const cbor_item_t *root;
	const uint8_t *data;
	uint64_t off, len = 0;
	size_t n;
	int r, has_len;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(root, "off", UINT64_MAX, &off);
	if (r < 0)
		return r;
	if (smp_cbor_get_bytes(root, "data", &data, &n) < 0)
		return -EBADMSG;
	has_len = smp_groups_opt_uint(root, "len", UINT64_MAX, &len);
	if (has_len < 0)
		return has_len;

	/* n is bounded by the packet, so the flexible array is too. */
	d = malloc(sizeof(*d) + n);
	if (!d)
		return -ENOMEM;
	*d = (struct smp_fs_download){ .off = off, .has_len = has_len > 0, .len = len, .data_len = n };
	if (n)
		memcpy(d->data, data, n);
	*ret = d;
	return 0;
}

/* ---- upload ------------------------------------------------------------------------ */

static size_t fs_upload_pairs(const struct smp_fs_upload_args *a)
{
	return a->off == 0 ? 4 : 3;
}

int smp_fs_upload_request(const struct smp_fs_upload_args *a, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (!a->name || !*a->name || (a->data_len > 0 && !a->data))
		return -EINVAL;
	err = smp_request_new(SMP_OP_WRITE, SMP_GROUP_FS, SMP_FS_FILE, &r);
	if (err < 0)
		return err;
	/* The order Zephyr 4.1's client sends (tests/data/zephyr-4.1): name, off, len, data. */
	smp_cbor_put_map(&r->pkt, fs_upload_pairs(a));
	smp_cbor_put_text(&r->pkt, "name");
	smp_cbor_put_text(&r->pkt, a->name);
	smp_cbor_put_text(&r->pkt, "off");
	smp_cbor_put_uint(&r->pkt, a->off);
	if (a->off == 0) {
		smp_cbor_put_text(&r->pkt, "len");
		smp_cbor_put_uint(&r->pkt, a->len);
	}
	smp_cbor_put_text(&r->pkt, "data");
	smp_cbor_put_bytes(&r->pkt, a->data, a->data_len);
	return smp_request_done(r, ret);
}

size_t smp_fs_upload_packet_size(const struct smp_fs_upload_args *a)
{
	size_t size = SMP_HEADER_SIZE + smp_cbor_uint_size(fs_upload_pairs(a));

	size += smp_cbor_str_size(4) + smp_cbor_str_size(a->name ? strlen(a->name) : 0);
	size += smp_cbor_str_size(3) + smp_cbor_uint_size(a->off);
	if (a->off == 0)
		size += smp_cbor_str_size(3) + smp_cbor_uint_size(a->len);
	size += smp_cbor_str_size(4) + smp_cbor_str_size(0);
	return size;
}

int smp_fs_upload_parse(const struct smp_response *rsp, uint64_t *ret)
{
	const cbor_item_t *root;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	return smp_groups_req_uint(root, "off", UINT64_MAX, ret);
}

int smp_fs_upload_error_len(const struct smp_response *rsp, uint64_t *ret)
{
	int r;

	if (rsp->status.kind == SMP_STATUS_OK)
		return -EINVAL;
	r = smp_groups_opt_uint(rsp->root, "len", UINT64_MAX, ret);
	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

/* ---- status, hash, types, close --------------------------------------------------- */

int smp_fs_status_request(const char *name, struct smp_request **ret)
{
	return fs_name_request(SMP_OP_READ, SMP_FS_STATUS, name, ret);
}

int smp_fs_status_parse(const struct smp_response *rsp, uint64_t *ret)
{
	const cbor_item_t *root;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	return smp_groups_req_uint(root, "len", UINT64_MAX, ret);
}

int smp_fs_hash_request(const char *name, const char *type, uint64_t off, uint64_t len,
			struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (!name || !*name || (type && !*type))
		return -EINVAL;
	err = smp_request_new(SMP_OP_READ, SMP_GROUP_FS, SMP_FS_HASH, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 1 + (type != NULL) + (off > 0) + (len > 0));
	smp_cbor_put_text(&r->pkt, "name");
	smp_cbor_put_text(&r->pkt, name);
	if (type) {
		smp_cbor_put_text(&r->pkt, "type");
		smp_cbor_put_text(&r->pkt, type);
	}
	if (off > 0) {
		smp_cbor_put_text(&r->pkt, "off");
		smp_cbor_put_uint(&r->pkt, off);
	}
	if (len > 0) {
		smp_cbor_put_text(&r->pkt, "len");
		smp_cbor_put_uint(&r->pkt, len);
	}
	return smp_request_done(r, ret);
}

struct smp_fs_hash *smp_fs_hash_free(struct smp_fs_hash *h)
{
	if (h) {
		free(h->type);
		free(h->output);
		free(h);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_fs_hash *, smp_fs_hash_free);

int smp_fs_hash_parse(const struct smp_response *rsp, struct smp_fs_hash **ret)
{
	_cleanup_(smp_fs_hash_freep) struct smp_fs_hash *h = NULL;
	const cbor_item_t *root, *out;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = smp_groups_req_text(root, "type", &h->type);
	if (r < 0)
		return r;
	r = smp_groups_opt_uint(root, "off", UINT64_MAX, &h->off);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(root, "len", UINT64_MAX, &h->len);
	if (r < 0)
		return r;

	out = smp_cbor_map_get(root, "output");
	if (out && cbor_isa_uint(out)) {
		h->output_uint = cbor_get_int(out);
	} else if (out && cbor_isa_bytestring(out)) {
		r = smp_groups_req_bytes(root, "output", &h->output, &h->output_len);
		if (r < 0)
			return r;
		h->output_is_bytes = true;
	} else {
		return -EBADMSG;
	}
	*ret = TAKE_PTR(h);
	return 0;
}

int smp_fs_types_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_FS, SMP_FS_TYPES, ret);
}

struct smp_fs_types *smp_fs_types_free(struct smp_fs_types *t)
{
	if (t) {
		for (size_t i = 0; i < t->n_types; i++)
			free(t->types[i].name);
		free(t->types);
		free(t);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_fs_types *, smp_fs_types_free);

int smp_fs_types_parse(const struct smp_response *rsp, struct smp_fs_types **ret)
{
	_cleanup_(smp_fs_types_freep) struct smp_fs_types *t = NULL;
	struct cbor_pair *p;
	size_t n;
	int r;

	r = smp_groups_root_map(rsp, "types", NULL, &p, &n);
	if (r < 0)
		return r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->types = smp_groups_calloc(n, sizeof(*t->types));
	if (!t->types)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct smp_fs_type *ty = &t->types[i];
		uint64_t v;

		r = smp_cbor_item_text(p[i].key, &ty->name);
		if (r < 0)
			return r;
		t->n_types++;
		if (!cbor_isa_map(p[i].value))
			return -EBADMSG;
		r = smp_groups_req_uint(p[i].value, "format", UINT32_MAX, &v);
		if (r < 0)
			return r;
		ty->format = (uint32_t)v;
		r = smp_groups_req_uint(p[i].value, "size", UINT32_MAX, &v);
		if (r < 0)
			return r;
		ty->size = (uint32_t)v;
	}
	*ret = TAKE_PTR(t);
	return 0;
}

int smp_fs_close_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_WRITE, SMP_GROUP_FS, SMP_FS_CLOSE, ret);
}
