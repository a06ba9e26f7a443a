/* gw-reported: the JSON of the registry's reported sections, built from parsed SMP answers */
#include <errno.h>
#include <stdio.h>

#include "daemon/gw-reported.h"
#include "lib/macro.h"

void gw_reported_hash_hex(const uint8_t hash[SMP_IMAGE_HASH_LEN],
			  char buf[2 * SMP_IMAGE_HASH_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t k = 0; k < SMP_IMAGE_HASH_LEN; k++) {
		buf[2 * k] = digits[hash[k] >> 4];
		buf[2 * k + 1] = digits[hash[k] & 0xf];
	}
	buf[2 * SMP_IMAGE_HASH_LEN] = '\0';
}

int gw_reported_image_state(const struct smp_image_state *s, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *images = json_array(), *o = NULL;

	if (!images)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_slots; i++) {
		const struct smp_image_slot_state *e = &s->slots[i];
		json_t *slot = json_pack("{sIsIsssbsbsbsbsb}", "image", (json_int_t)e->image,
					 "slot", (json_int_t)e->slot, "version", e->version,
					 "bootable", e->bootable, "pending", e->pending,
					 "confirmed", e->confirmed, "active", e->active,
					 "permanent", e->permanent);
		char hex[2 * SMP_IMAGE_HASH_LEN + 1];

		if (!slot || json_array_append_new(images, slot) < 0)
			return -ENOMEM;
		if (!e->has_hash)
			continue;
		gw_reported_hash_hex(e->hash, hex);
		if (json_object_set_new(slot, "hash", json_string(hex)) < 0)
			return -ENOMEM;
	}
	o = json_pack("{sO}", "images", images);
	if (!o)
		return -ENOMEM;
	if (s->has_split_status &&
	    json_object_set_new(o, "split_status", json_integer(s->split_status)) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

int gw_reported_stat_group(const struct smp_stat_group *g, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *o = json_object();

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < g->n_fields; i++) {
		uint64_t v = MIN(g->fields[i].value, (uint64_t)INT64_MAX);

		if (json_object_set_new(o, g->fields[i].name, json_integer((json_int_t)v)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

int gw_reported_params(const struct smp_os_params *p, json_t **ret)
{
	json_t *o = json_pack("{sIsI}", "buf_size", (json_int_t)p->buf_size, "buf_count",
			      (json_int_t)p->buf_count);

	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

int gw_reported_info(const char *output, json_t **ret)
{
	json_t *o = json_pack("{ss}", "output", output);

	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}
