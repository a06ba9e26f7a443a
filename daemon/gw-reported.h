/* gw-reported: the JSON of the registry's reported sections, built from parsed SMP answers */
#pragma once

#include <jansson.h>

#include "lib/smp-image.h"
#include "lib/smp-os.h"
#include "lib/smp-stat.h"

/* The poller and the REST API both write these sections (gw-poller.h lists
 * them), so a value read from the cache and one read from the device just
 * now look the same. Each returns 0 and a new reference in *ret, or
 * -ENOMEM. */

/* "image_state": {"images": [{"image", "slot", "version", "hash"?, "bootable",
 * "pending", "confirmed", "active", "permanent"}, ...], "split_status"?}. */
int gw_reported_image_state(const struct smp_image_state *s, json_t **ret);
/* One group of "stats": {"<field>": n, ...}; values above INT64_MAX are
 * clamped (JSON integers are signed). */
int gw_reported_stat_group(const struct smp_stat_group *g, json_t **ret);
/* "params": {"buf_size", "buf_count"}. */
int gw_reported_params(const struct smp_os_params *p, json_t **ret);
/* "info": {"output": text}. */
int gw_reported_info(const char *output, json_t **ret);

/* Lower-case hex of an image hash into buf (2 * SMP_IMAGE_HASH_LEN + 1 bytes). */
void gw_reported_hash_hex(const uint8_t hash[SMP_IMAGE_HASH_LEN],
			  char buf[2 * SMP_IMAGE_HASH_LEN + 1]);
