/* smp-image: requests and response parsers of the image management group (1) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-request.h"
#include "smp-response.h"

/* Builder and parser conventions are those of smp-os.h. */

#define SMP_IMAGE_HASH_LEN 32

/* Image state (cmd 0): READ {} or WRITE {"hash", "confirm"} → the list below. */
struct smp_image_slot_state {
	uint32_t image; /* 0 when the device leaves it out */
	uint32_t slot;  /* 0 primary, 1 secondary */
	char *version;
	uint8_t hash[SMP_IMAGE_HASH_LEN]; /* the image's SHA256 TLV, not a file hash */
	bool has_hash;
	/* Absent flags are false (frugal-list builds send only the true ones). */
	bool bootable;
	bool pending;
	bool confirmed;
	bool active;
	bool permanent;
};

struct smp_image_state {
	size_t n_slots;
	struct smp_image_slot_state *slots; /* in the device's order */
	bool has_split_status;
	int64_t split_status;
};

int smp_image_state_read_request(struct smp_request **ret);
/* Set state: hash NULL leaves "hash" out (confirm the running image); confirm
 * is always sent. {"hash": H, "confirm": false} marks H for test. */
int smp_image_state_write_request(const uint8_t hash[SMP_IMAGE_HASH_LEN], bool confirm,
				  struct smp_request **ret);
/* Requires "images" (array) and, per entry, "slot" and "version". */
int smp_image_state_parse(const struct smp_response *rsp, struct smp_image_state **ret);
struct smp_image_state *smp_image_state_free(struct smp_image_state *s);

/* Lookups in a parsed state; NULL when not found. Borrowed from s. */
const struct smp_image_slot_state *smp_image_state_find_slot(const struct smp_image_state *s,
							     uint32_t image, uint32_t slot);
const struct smp_image_slot_state *smp_image_state_find_hash(const struct smp_image_state *s,
							     const uint8_t hash[SMP_IMAGE_HASH_LEN]);
const struct smp_image_slot_state *smp_image_state_find_active(const struct smp_image_state *s,
							       uint32_t image);
/* Writes the set flags as "active,confirmed,..." (or "" for none) into buf;
 * names that do not fit in size are left out whole. Returns buf. */
char *smp_image_slot_state_flags(const struct smp_image_slot_state *e, char *buf, size_t size);

/* Upload (cmd 1, WRITE). The first chunk (off == 0) carries len, and image,
 * sha and upgrade when given; later chunks only off and data. Keys in the
 * order image, len, off, sha, data, upgrade. data is copied once, into the
 * packet. -EINVAL when sha_len > 32 or data is NULL with data_len > 0;
 * -EMSGSIZE when the packet would exceed the 16-bit length. */
struct smp_image_upload_args {
	uint64_t off;
	const uint8_t *data;
	size_t data_len;
	uint64_t len;   /* total file size: sent only when off == 0 */
	uint32_t image; /* sent only when off == 0 and has_image */
	bool has_image;
	const uint8_t *sha; /* sent only when off == 0 and sha_len > 0 (<= 32) */
	size_t sha_len;
	bool upgrade; /* sent only when off == 0 and has_upgrade */
	bool has_upgrade;
};

int smp_image_upload_request(const struct smp_image_upload_args *a, struct smp_request **ret);
/* Wire size of the whole packet (8-byte header included) that
 * smp_image_upload_request would produce for these args with data_len = 0.
 * Adding n data bytes adds smp_cbor_str_size(n) - 1. */
size_t smp_image_upload_packet_size(const struct smp_image_upload_args *a);

/* {"off": uint, "match": bool?}: off = next offset the device expects; match
 * is only there on the last chunk of a device that verifies the sha. */
struct smp_image_upload_result {
	uint64_t off;
	bool has_match;
	bool match;
};
int smp_image_upload_parse(const struct smp_response *rsp, struct smp_image_upload_result *ret);

/* Erase (cmd 5, WRITE): {} or {"slot": n}; slot < 0 leaves it out (the device
 * picks the non-active slot). Response {}. */
int smp_image_erase_request(int64_t slot, struct smp_request **ret);

/* Slot info (cmd 6, READ). */
struct smp_image_slot_info_slot {
	uint32_t slot;
	uint64_t size; /* partition size in bytes */
	bool has_upload_image_id;
	uint32_t upload_image_id; /* the upload "image" value that targets this slot */
};

struct smp_image_slot_info_image {
	uint32_t image;
	size_t n_slots;
	struct smp_image_slot_info_slot *slots;
	bool has_max_image_size;
	uint64_t max_image_size;
};

struct smp_image_slot_info {
	size_t n_images;
	struct smp_image_slot_info_image *images;
};

int smp_image_slot_info_request(struct smp_request **ret);
/* Requires "images"; per image "image" and "slots"; per slot "slot" and "size". */
int smp_image_slot_info_parse(const struct smp_response *rsp, struct smp_image_slot_info **ret);
struct smp_image_slot_info *smp_image_slot_info_free(struct smp_image_slot_info *s);
