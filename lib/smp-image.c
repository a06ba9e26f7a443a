/* smp-image: requests and response parsers of the image management group (1) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-groups-internal.h"
#include "smp-image.h"

/* ---- state ------------------------------------------------------------------------- */

int smp_image_state_read_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_IMAGE, SMP_IMAGE_STATE, ret);
}

int smp_image_state_write_request(const uint8_t hash[SMP_IMAGE_HASH_LEN], bool confirm,
				  struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	err = smp_request_new(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_STATE, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, hash ? 2 : 1);
	if (hash) {
		smp_cbor_put_text(&r->pkt, "hash");
		smp_cbor_put_bytes(&r->pkt, hash, SMP_IMAGE_HASH_LEN);
	}
	smp_cbor_put_text(&r->pkt, "confirm");
	smp_cbor_put_bool(&r->pkt, confirm);
	return smp_request_done(r, ret);
}

struct smp_image_state *smp_image_state_free(struct smp_image_state *s)
{
	if (s) {
		for (size_t i = 0; i < s->n_slots; i++)
			free(s->slots[i].version);
		free(s->slots);
		free(s);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_image_state *, smp_image_state_free);

static int slot_state_parse(const cbor_item_t *m, struct smp_image_slot_state *e)
{
	static const struct {
		const char *key;
		size_t offset;
	} flags[] = {
		{ "bootable", offsetof(struct smp_image_slot_state, bootable) },
		{ "pending", offsetof(struct smp_image_slot_state, pending) },
		{ "confirmed", offsetof(struct smp_image_slot_state, confirmed) },
		{ "active", offsetof(struct smp_image_slot_state, active) },
		{ "permanent", offsetof(struct smp_image_slot_state, permanent) },
	};
	const cbor_item_t *hash;
	uint64_t v;
	int r;

	if (!cbor_isa_map(m))
		return -EBADMSG;
	r = smp_groups_opt_uint(m, "image", UINT32_MAX, &v);
	if (r < 0)
		return r;
	e->image = r > 0 ? (uint32_t)v : 0;
	r = smp_groups_req_uint(m, "slot", UINT32_MAX, &v);
	if (r < 0)
		return r;
	e->slot = (uint32_t)v;
	r = smp_groups_req_text(m, "version", &e->version);
	if (r < 0)
		return r;

	hash = smp_cbor_map_get(m, "hash");
	if (hash) {
		if (!cbor_isa_bytestring(hash) || !cbor_bytestring_is_definite(hash) ||
		    cbor_bytestring_length(hash) != SMP_IMAGE_HASH_LEN)
			return -EBADMSG;
		memcpy(e->hash, cbor_bytestring_handle(hash), SMP_IMAGE_HASH_LEN);
		e->has_hash = true;
	}

	for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
		r = smp_groups_opt_bool(m, flags[i].key, (bool *)((char *)e + flags[i].offset));
		if (r < 0)
			return r;
	}
	return 0;
}

int smp_image_state_parse(const struct smp_response *rsp, struct smp_image_state **ret)
{
	_cleanup_(smp_image_state_freep) struct smp_image_state *s = NULL;
	const cbor_item_t *root;
	cbor_item_t **items;
	size_t n;
	int r;

	r = smp_groups_root_array(rsp, "images", &root, &items, &n);
	if (r < 0)
		return r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = smp_groups_opt_int(root, "splitStatus", INT64_MIN, INT64_MAX, &s->split_status);
	if (r < 0)
		return r;
	s->has_split_status = r > 0;
	s->slots = smp_groups_calloc(n, sizeof(*s->slots));
	if (!s->slots)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		s->n_slots++;
		r = slot_state_parse(items[i], &s->slots[i]);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

const struct smp_image_slot_state *smp_image_state_find_slot(const struct smp_image_state *s,
							     uint32_t image, uint32_t slot)
{
	for (size_t i = 0; i < s->n_slots; i++)
		if (s->slots[i].image == image && s->slots[i].slot == slot)
			return &s->slots[i];
	return NULL;
}

const struct smp_image_slot_state *smp_image_state_find_hash(const struct smp_image_state *s,
							     const uint8_t hash[SMP_IMAGE_HASH_LEN])
{
	for (size_t i = 0; i < s->n_slots; i++)
		if (s->slots[i].has_hash && memcmp(s->slots[i].hash, hash, SMP_IMAGE_HASH_LEN) == 0)
			return &s->slots[i];
	return NULL;
}

const struct smp_image_slot_state *smp_image_state_find_active(const struct smp_image_state *s,
							       uint32_t image)
{
	for (size_t i = 0; i < s->n_slots; i++)
		if (s->slots[i].image == image && s->slots[i].active)
			return &s->slots[i];
	return NULL;
}

char *smp_image_slot_state_flags(const struct smp_image_slot_state *e, char *buf, size_t size)
{
	const struct {
		bool set;
		const char *name;
	} flags[] = {
		{ e->active, "active" },
		{ e->confirmed, "confirmed" },
		{ e->pending, "pending" },
		{ e->permanent, "permanent" },
		{ e->bootable, "bootable" },
	};
	size_t len = 0;

	if (size == 0)
		return buf;
	buf[0] = 0;
	for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
		int n;

		if (!flags[i].set)
			continue;
		n = snprintf(buf + len, size - len, "%s%s", len ? "," : "", flags[i].name);
		if (n < 0 || (size_t)n >= size - len) {
			buf[len] = 0; /* only whole names */
			break;
		}
		len += (size_t)n;
	}
	return buf;
}

/* ---- upload ----------------------------------------------------------------------- */

static bool upload_first(const struct smp_image_upload_args *a)
{
	return a->off == 0;
}

static size_t upload_pairs(const struct smp_image_upload_args *a)
{
	size_t n = 2; /* off, data */

	if (upload_first(a))
		n += 1 + a->has_image + (a->sha_len > 0) + a->has_upgrade;
	return n;
}

int smp_image_upload_request(const struct smp_image_upload_args *a, struct smp_request **ret)
{
	struct smp_request *r;
	bool first = upload_first(a);
	int err;

	if (a->sha_len > SMP_IMAGE_HASH_LEN || (a->sha_len > 0 && !a->sha) ||
	    (a->data_len > 0 && !a->data))
		return -EINVAL;
	err = smp_request_new(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_UPLOAD, &r);
	if (err < 0)
		return err;
	/* Key order of smp-protocol.md V13: image, len, off, sha, data, upgrade. */
	smp_cbor_put_map(&r->pkt, upload_pairs(a));
	if (first && a->has_image) {
		smp_cbor_put_text(&r->pkt, "image");
		smp_cbor_put_uint(&r->pkt, a->image);
	}
	if (first) {
		smp_cbor_put_text(&r->pkt, "len");
		smp_cbor_put_uint(&r->pkt, a->len);
	}
	smp_cbor_put_text(&r->pkt, "off");
	smp_cbor_put_uint(&r->pkt, a->off);
	if (first && a->sha_len > 0) {
		smp_cbor_put_text(&r->pkt, "sha");
		smp_cbor_put_bytes(&r->pkt, a->sha, a->sha_len);
	}
	smp_cbor_put_text(&r->pkt, "data");
	smp_cbor_put_bytes(&r->pkt, a->data, a->data_len);
	if (first && a->has_upgrade) {
		smp_cbor_put_text(&r->pkt, "upgrade");
		smp_cbor_put_bool(&r->pkt, a->upgrade);
	}
	return smp_request_done(r, ret);
}

/* Size of a text key of n characters plus its value. */
#define KEY(n) smp_cbor_str_size(n)

size_t smp_image_upload_packet_size(const struct smp_image_upload_args *a)
{
	size_t size = SMP_HEADER_SIZE + smp_cbor_uint_size(upload_pairs(a));

	size += KEY(3) + smp_cbor_uint_size(a->off);
	size += KEY(4) + smp_cbor_str_size(0);
	if (upload_first(a)) {
		size += KEY(3) + smp_cbor_uint_size(a->len);
		if (a->has_image)
			size += KEY(5) + smp_cbor_uint_size(a->image);
		if (a->sha_len > 0)
			size += KEY(3) + smp_cbor_str_size(a->sha_len);
		if (a->has_upgrade)
			size += KEY(7) + 1;
	}
	return size;
}

int smp_image_upload_parse(const struct smp_response *rsp, struct smp_image_upload_result *ret)
{
	struct smp_image_upload_result u = { 0 };
	const cbor_item_t *root;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(root, "off", UINT64_MAX, &u.off);
	if (r < 0)
		return r;
	r = smp_groups_opt_bool(root, "match", &u.match);
	if (r < 0)
		return r;
	u.has_match = r > 0;
	*ret = u;
	return 0;
}

/* ---- erase, slot info ------------------------------------------------------------- */

int smp_image_erase_request(int64_t slot, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (slot > UINT32_MAX)
		return -EINVAL;
	if (slot < 0)
		return smp_request_new_empty(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_ERASE, ret);
	err = smp_request_new(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_ERASE, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 1);
	smp_cbor_put_text(&r->pkt, "slot");
	smp_cbor_put_uint(&r->pkt, (uint64_t)slot);
	return smp_request_done(r, ret);
}

int smp_image_slot_info_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_IMAGE, SMP_IMAGE_SLOT_INFO, ret);
}

struct smp_image_slot_info *smp_image_slot_info_free(struct smp_image_slot_info *s)
{
	if (s) {
		for (size_t i = 0; i < s->n_images; i++)
			free(s->images[i].slots);
		free(s->images);
		free(s);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_image_slot_info *, smp_image_slot_info_free);

static int slot_info_slot_parse(const cbor_item_t *m, struct smp_image_slot_info_slot *s)
{
	uint64_t v;
	int r;

	if (!cbor_isa_map(m))
		return -EBADMSG;
	r = smp_groups_req_uint(m, "slot", UINT32_MAX, &v);
	if (r < 0)
		return r;
	s->slot = (uint32_t)v;
	r = smp_groups_req_uint(m, "size", UINT64_MAX, &s->size);
	if (r < 0)
		return r;
	r = smp_groups_opt_uint(m, "upload_image_id", UINT32_MAX, &v);
	if (r < 0)
		return r;
	s->has_upload_image_id = r > 0;
	s->upload_image_id = r > 0 ? (uint32_t)v : 0;
	return 0;
}

static int slot_info_image_parse(const cbor_item_t *m, struct smp_image_slot_info_image *img)
{
	const cbor_item_t *slots;
	cbor_item_t **items;
	uint64_t v;
	size_t n;
	int r;

	if (!cbor_isa_map(m))
		return -EBADMSG;
	r = smp_groups_req_uint(m, "image", UINT32_MAX, &v);
	if (r < 0)
		return r;
	img->image = (uint32_t)v;
	r = smp_groups_opt_uint(m, "max_image_size", UINT64_MAX, &img->max_image_size);
	if (r < 0)
		return r;
	img->has_max_image_size = r > 0;
	r = smp_groups_req_array(m, "slots", &slots);
	if (r < 0)
		return r;
	n = cbor_array_size(slots);
	items = cbor_array_handle(slots);
	img->slots = smp_groups_calloc(n, sizeof(*img->slots));
	if (!img->slots)
		return -ENOMEM;
	img->n_slots = n;
	for (size_t i = 0; i < n; i++) {
		r = slot_info_slot_parse(items[i], &img->slots[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

int smp_image_slot_info_parse(const struct smp_response *rsp, struct smp_image_slot_info **ret)
{
	_cleanup_(smp_image_slot_info_freep) struct smp_image_slot_info *s = NULL;
	cbor_item_t **items;
	size_t n;
	int r;

	r = smp_groups_root_array(rsp, "images", NULL, &items, &n);
	if (r < 0)
		return r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->images = smp_groups_calloc(n, sizeof(*s->images));
	if (!s->images)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		s->n_images++;
		r = slot_info_image_parse(items[i], &s->images[i]);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(s);
	return 0;
}
