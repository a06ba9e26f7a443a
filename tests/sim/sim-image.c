/* sim-image: MCUboot's two slots, their trailers, the upload session and the boot decision */
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "sim-device.h"
#include "sim-image.h"
#include "sim-util.h"
#include "smp-cbor.h"
#include "smp-error.h"

#define SIM_FLASH_PAGE 4096
#define SIM_SHA_LEN 32
/* MCUboot's boot magic at the end of a slot (8-byte write alignment). */
static const uint8_t sim_boot_magic[16] = {0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f,
					   0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80};

/* The trailer fields MCUboot reads; "false" is the erased value. */
struct sim_trailer {
	bool magic;	/* BOOT_MAGIC_GOOD (else UNSET: erased) */
	bool image_ok;	/* BOOT_FLAG_SET */
	bool copy_done; /* BOOT_FLAG_SET */
	uint8_t swap_info;
};

/* One flash partition. Bytes at and after len read as erased (0xff). */
struct sim_slot {
	char name; /* 'a' or 'b': the physical partition, which persists as slot-<name>.bin */
	uint8_t *data;
	size_t len;
	size_t cap;
	struct sim_trailer tr;
	/* Parsing a slot hashes the image: cache it until the next write. */
	uint64_t gen;
	uint64_t parsed_gen;
	int parse_rc;
	struct smp_mcuboot_image *parsed;
};

struct sim_image {
	uint32_t slot_size;
	int mode;
	char *dir;
	struct sim_flash_stats *stats;
	struct sim_slot phys[2];
	unsigned primary; /* which physical partition is slot 0 */
	uint8_t factory_hash[SIM_SHA_LEN];

	/* Zephyr's g_img_mgmt_state: RAM only. */
	bool up_active;
	uint64_t up_off;
	uint64_t up_size;
	uint8_t up_sha[SIM_SHA_LEN];
	size_t up_sha_len;
};

static struct sim_slot *sim_image_slot(struct sim_image *img, unsigned slot)
{
	return &img->phys[slot == 0 ? img->primary : 1 - img->primary];
}

const char *sim_swap_type_to_string(enum sim_swap_type t)
{
	switch (t) {
	case SIM_SWAP_NONE:
		return "none";
	case SIM_SWAP_TEST:
		return "test";
	case SIM_SWAP_PERM:
		return "perm";
	case SIM_SWAP_REVERT:
		return "revert";
	}
	return "?";
}

/* ---- persistence ---- */

static char *sim_image_path(const struct sim_image *img, const char *file)
{
	return sim_strdup_printf("%s/%s", img->dir, file);
}

static int sim_image_save_state(struct sim_image *img)
{
	_cleanup_free_ char *path = NULL;
	char buf[256];
	int n;

	if (!img->dir)
		return 0;
	n = snprintf(buf, sizeof(buf), "primary %c\n", img->phys[img->primary].name);
	for (unsigned i = 0; i < 2; i++) {
		const struct sim_slot *s = &img->phys[i];

		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "trailer %c %d %d %d %u\n", s->name,
			      s->tr.magic, s->tr.image_ok, s->tr.copy_done, s->tr.swap_info);
	}
	path = sim_image_path(img, "image.state");
	if (!path)
		return -ENOMEM;
	return sim_write_file_atomic(path, buf, (size_t)n);
}

/* Mirrors a slot change into slot-<name>.bin: [from, len) rewritten, the
 * file cut at len. Erased gaps are written as 0xff like the RAM copy. */
static int sim_image_save_slot(struct sim_image *img, struct sim_slot *s, size_t from)
{
	_cleanup_free_ char *path = NULL;
	char file[16];
	int fd, r = 0;

	if (!img->dir)
		return 0;
	snprintf(file, sizeof(file), "slot-%c.bin", s->name);
	path = sim_image_path(img, file);
	if (!path)
		return -ENOMEM;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (from < s->len) {
		ssize_t n = pwrite(fd, s->data + from, s->len - from, (off_t)from);

		if (n < 0 || (size_t)n != s->len - from)
			r = n < 0 ? -errno : -EIO;
	}
	if (r == 0 && ftruncate(fd, (off_t)s->len) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int sim_slot_reserve(struct sim_slot *s, size_t need)
{
	uint8_t *p;
	size_t cap;

	if (need <= s->cap)
		return 0;
	cap = MAX(need, s->cap * 2);
	cap = MAX(cap, (size_t)SIM_FLASH_PAGE);
	p = realloc(s->data, cap);
	if (!p)
		return -ENOMEM;
	s->data = p;
	s->cap = cap;
	return 0;
}

static int sim_image_load(struct sim_image *img)
{
	_cleanup_free_ char *path = sim_image_path(img, "image.state");
	_cleanup_free_ uint8_t *state = NULL;
	size_t state_len;
	char *line, *save = NULL;
	int r;

	if (!path)
		return -ENOMEM;
	r = sim_read_file(path, 4096, &state, &state_len);
	if (r < 0)
		return r;
	state[state_len] = 0;
	for (line = strtok_r((char *)state, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char name;
		int magic, ok, done;
		unsigned info;

		if (sscanf(line, "primary %c", &name) == 1 && (name == 'a' || name == 'b'))
			img->primary = name == 'a' ? 0 : 1;
		else if (sscanf(line, "trailer %c %d %d %d %u", &name, &magic, &ok, &done, &info) ==
			     5 &&
			 (name == 'a' || name == 'b')) {
			struct sim_slot *s = &img->phys[name == 'a' ? 0 : 1];

			s->tr = (struct sim_trailer){magic != 0, ok != 0, done != 0, (uint8_t)info};
		} else
			return -EBADMSG;
	}
	for (unsigned i = 0; i < 2; i++) {
		struct sim_slot *s = &img->phys[i];
		_cleanup_free_ char *slot_path = NULL;
		_cleanup_free_ uint8_t *data = NULL;
		char file[16];
		size_t len;

		snprintf(file, sizeof(file), "slot-%c.bin", s->name);
		slot_path = sim_image_path(img, file);
		if (!slot_path)
			return -ENOMEM;
		r = sim_read_file(slot_path, img->slot_size, &data, &len);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		r = sim_slot_reserve(s, len);
		if (r < 0)
			return r;
		if (len)
			memcpy(s->data, data, len);
		s->len = len;
		s->gen++;
	}
	return 0;
}

/* ---- flash access ---- */

static void sim_image_account(struct sim_image *img, bool erase, size_t bytes, uint64_t us)
{
	if (!img->stats)
		return;
	if (erase) {
		img->stats->flash_erase_calls++;
		img->stats->flash_erase_time_us += (uint32_t)us;
	} else {
		img->stats->flash_write_calls++;
		img->stats->bytes_written += (uint32_t)bytes;
		img->stats->flash_write_time_us += (uint32_t)us;
	}
}

static int sim_slot_write(struct sim_image *img, struct sim_slot *s, size_t off, const uint8_t *p,
			  size_t n)
{
	size_t from = MIN(off, s->len);
	int r;

	if (off + n > img->slot_size)
		return -ENOSPC;
	r = sim_slot_reserve(s, off + n);
	if (r < 0)
		return r;
	if (off > s->len)
		memset(s->data + s->len, 0xff, off - s->len);
	if (img->stats) {
		for (size_t i = off; i < MIN(off + n, s->len); i++)
			if (s->data[i] != 0xff) {
				img->stats->double_writes++;
				break;
			}
	}
	memcpy(s->data + off, p, n);
	s->len = MAX(s->len, off + n);
	s->gen++;
	return sim_image_save_slot(img, s, from);
}

/* Erases [0, size) rounded up to whole pages (size 0 = the whole slot),
 * and the trailer, as img_mgmt_erase_image_data() does. */
static int sim_slot_erase(struct sim_image *img, struct sim_slot *s, size_t size)
{
	size_t end =
	    size ? (size + SIM_FLASH_PAGE - 1) / SIM_FLASH_PAGE * SIM_FLASH_PAGE : SIZE_MAX;
	int r;

	if (end >= s->len)
		s->len = 0;
	else
		memset(s->data, 0xff, end);
	s->tr = (struct sim_trailer){0};
	s->gen++;
	r = sim_image_save_slot(img, s, 0);
	if (r < 0)
		return r;
	return sim_image_save_state(img);
}

static bool sim_slot_empty(const struct sim_slot *s)
{
	if (s->tr.magic || s->tr.image_ok || s->tr.copy_done)
		return false;
	for (size_t i = 0; i < s->len; i++)
		if (s->data[i] != 0xff)
			return false;
	return true;
}

/* An image written with imgtool --pad carries its own trailer at the end of
 * the slot; MCUboot reads it from there. */
static void sim_slot_trailer_from_data(struct sim_image *img, struct sim_slot *s)
{
	size_t end = img->slot_size;

	if (s->len < end || end < 48)
		return;
	if (memcmp(s->data + end - 16, sim_boot_magic, 16) != 0)
		return;
	s->tr.magic = true;
	s->tr.image_ok = s->data[end - 24] == 0x01;
	s->tr.copy_done = s->data[end - 32] == 0x01;
}

/* ---- image facts, from the bytes ---- */

/* img_mgmt_read_info(): 0 and the parsed image, or an image group error. */
static int sim_slot_info(struct sim_slot *s, const struct smp_mcuboot_image **ret)
{
	if (s->len < 4 ||
	    (s->data[0] == 0xff && s->data[1] == 0xff && s->data[2] == 0xff && s->data[3] == 0xff))
		return SIM_IMG_ERR_NO_IMAGE;
	if (s->parsed_gen != s->gen || (!s->parsed && s->parse_rc == 0)) {
		enum smp_mcuboot_error e;

		s->parsed = smp_mcuboot_image_free(s->parsed);
		s->parse_rc = smp_mcuboot_parse_full(s->data, s->len, 0, &e, &s->parsed);
		if (s->parse_rc < 0) {
			switch (e) {
			case SMP_MCUBOOT_E_BAD_MAGIC:
			case SMP_MCUBOOT_E_OLD_MAGIC:
				s->parse_rc = SIM_IMG_ERR_INVALID_IMAGE_HEADER_MAGIC;
				break;
			case SMP_MCUBOOT_E_MULTIPLE_SHA256:
				s->parse_rc = 6; /* TLV_MULTIPLE_HASHES_FOUND */
				break;
			case SMP_MCUBOOT_E_NO_SHA256:
			case SMP_MCUBOOT_E_SHA256_LENGTH:
				s->parse_rc = SIM_IMG_ERR_HASH_NOT_FOUND;
				break;
			default:
				s->parse_rc = SIM_IMG_ERR_NO_TLVS;
			}
		}
		s->parsed_gen = s->gen;
	}
	if (s->parse_rc != 0)
		return s->parse_rc;
	*ret = s->parsed;
	return 0;
}

/* MCUboot's boot_image_check(): header, TLVs and the recomputed hash. There
 * is no key, so signatures are not checked. */
static bool sim_slot_bootable(struct sim_slot *s)
{
	const struct smp_mcuboot_image *m;

	if (sim_slot_info(s, &m) != 0)
		return false;
	if (m->hdr.flags & SMP_MCUBOOT_F_NON_BOOTABLE)
		return false;
	return !m->hash_checkable || m->hash_ok;
}

/* bootutil's boot_swap_type_multi() table. */
enum sim_swap_type sim_image_swap_type(struct sim_image *img)
{
	const struct sim_trailer *p = &sim_image_slot(img, 0)->tr;
	const struct sim_trailer *s = &sim_image_slot(img, 1)->tr;

	if (s->magic && !s->image_ok)
		return SIM_SWAP_TEST;
	if (s->magic && s->image_ok)
		return SIM_SWAP_PERM;
	if (p->magic && !s->magic && !p->image_ok && p->copy_done)
		return SIM_SWAP_REVERT;
	return SIM_SWAP_NONE;
}

enum sim_next_boot {
	SIM_NEXT_NORMAL,
	SIM_NEXT_TEST,
	SIM_NEXT_REVERT,
};

/* img_mgmt_get_next_boot_slot() for swap modes; the active slot is 0. */
static unsigned sim_image_next_boot(struct sim_image *img, enum sim_next_boot *type)
{
	switch (sim_image_swap_type(img)) {
	case SIM_SWAP_NONE:
		*type = SIM_NEXT_NORMAL;
		return 0;
	case SIM_SWAP_PERM:
		*type = SIM_NEXT_NORMAL;
		return 1;
	case SIM_SWAP_REVERT:
		*type = SIM_NEXT_REVERT;
		return 1;
	case SIM_SWAP_TEST:
		*type = SIM_NEXT_TEST;
		return 1;
	}
	*type = SIM_NEXT_NORMAL;
	return 0;
}

/* img_mgmt_slot_in_use(). */
static bool sim_image_slot_in_use(struct sim_image *img, unsigned slot)
{
	enum sim_next_boot type;
	unsigned nbs = sim_image_next_boot(img, &type);

	if (slot == nbs && type == SIM_NEXT_REVERT)
		return true;
	if ((slot == nbs && type == SIM_NEXT_TEST) || (nbs != 0 && type == SIM_NEXT_NORMAL))
		return true;
	return slot == 0;
}

/* ---- lifecycle ---- */

int sim_image_build(const char *ident, const struct smp_mcuboot_version *v, size_t payload_len,
		    uint8_t **ret, size_t *ret_len)
{
	const size_t hdr_size = 0x200, tlv_len = 4 + 4 + SIM_SHA_LEN;
	size_t len = hdr_size + payload_len + tlv_len;
	struct sha256_ctx sha;
	struct sim_rng rng;
	uint64_t seed = 1469598103934665603ULL;
	uint8_t *p = calloc(1, len);

	if (!p)
		return -ENOMEM;
	for (const char *c = ident; *c; c++)
		seed = (seed ^ (uint8_t)*c) * 1099511628211ULL;
	sim_rng_seed(&rng, seed, 0);
	/* Header, little-endian (smp-protocol.md §14.2). */
	p[0] = 0x3d, p[1] = 0xb8, p[2] = 0xf3, p[3] = 0x96;
	p[8] = hdr_size & 0xff, p[9] = hdr_size >> 8;
	for (unsigned i = 0; i < 4; i++)
		p[12 + i] = (uint8_t)(payload_len >> (8 * i));
	p[20] = v->major;
	p[21] = v->minor;
	p[22] = v->revision & 0xff, p[23] = v->revision >> 8;
	for (unsigned i = 0; i < 4; i++)
		p[24 + i] = (uint8_t)(v->build >> (8 * i));
	/* A recognisable payload: the identity, then filler unique to it. */
	snprintf((char *)p + hdr_size, payload_len, "smp-sim application image of %s", ident);
	for (size_t i = hdr_size + strlen((char *)p + hdr_size) + 1; i < hdr_size + payload_len;
	     i++)
		p[i] = (uint8_t)sim_rng_next(&rng);
	/* Unprotected TLV area with the SHA-256 of header and payload. */
	p[hdr_size + payload_len + 0] = 0x07;
	p[hdr_size + payload_len + 1] = 0x69;
	p[hdr_size + payload_len + 2] = (uint8_t)tlv_len;
	p[hdr_size + payload_len + 4] = 0x10;
	p[hdr_size + payload_len + 6] = SIM_SHA_LEN;
	sha256_init(&sha);
	sha256_update(&sha, hdr_size + payload_len, p);
	sha256_digest(&sha, SIM_SHA_LEN, p + hdr_size + payload_len + 8);
	*ret = p;
	*ret_len = len;
	return 0;
}

static int sim_image_factory(struct sim_image *img, const struct sim_image_params *p)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	int r;

	r = sim_image_build(p->ident, &p->version, 6 * 1024, &data, &len);
	if (r < 0)
		return r;
	if (len > img->slot_size)
		return -ENOSPC;
	img->primary = 0;
	r = sim_slot_write(img, &img->phys[0], 0, data, len);
	if (r < 0)
		return r;
	r = sim_image_save_slot(img, &img->phys[1], 0);
	if (r < 0)
		return r;
	return sim_image_save_state(img);
}

int sim_image_new(const struct sim_image_params *p, struct sim_image **ret)
{
	struct sim_image *img;
	_cleanup_free_ uint8_t *factory = NULL;
	size_t factory_len;
	int r;

	img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->slot_size = p->slot_size;
	img->mode = p->mode;
	img->stats = p->stats;
	img->phys[0].name = 'a';
	img->phys[1].name = 'b';
	if (p->dir) {
		img->dir = strdup(p->dir);
		if (!img->dir) {
			r = -ENOMEM;
			goto fail;
		}
	}
	/* The factory image is rebuilt on every start: the fail-boot fault
	 * spares it by its hash. */
	r = sim_image_build(p->ident, &p->version, 6 * 1024, &factory, &factory_len);
	if (r < 0)
		goto fail;
	memcpy(img->factory_hash, factory + factory_len - SIM_SHA_LEN, SIM_SHA_LEN);
	r = img->dir ? sim_image_load(img) : -ENOENT;
	if (r == -ENOENT)
		r = sim_image_factory(img, p);
	if (r < 0)
		goto fail;
	*ret = img;
	return 0;
fail:
	sim_image_free(img);
	return r;
}

struct sim_image *sim_image_free(struct sim_image *img)
{
	if (!img)
		return NULL;
	for (unsigned i = 0; i < 2; i++) {
		free(img->phys[i].data);
		smp_mcuboot_image_free(img->phys[i].parsed);
	}
	free(img->dir);
	free(img);
	return NULL;
}

static void sim_image_reset_upload(struct sim_image *img)
{
	img->up_active = false;
	img->up_off = 0;
	img->up_size = 0;
	img->up_sha_len = 0;
	memset(img->up_sha, 0, sizeof(img->up_sha));
}

void sim_image_power_off(struct sim_image *img)
{
	sim_image_reset_upload(img);
}

const char *sim_image_running_version(struct sim_image *img,
				      char buf[static SMP_MCUBOOT_VERSION_STRING_MAX])
{
	const struct smp_mcuboot_image *m;

	if (sim_slot_info(sim_image_slot(img, 0), &m) != 0)
		return strcpy(buf, "?");
	return smp_mcuboot_version_string(&m->hdr.version, SMP_MCUBOOT_VERSION_SMP, buf);
}

static bool sim_image_fails(struct sim_image *img, const struct sim_faults *f)
{
	const struct smp_mcuboot_image *m;

	if (!f || !f->fail_boot)
		return false;
	if (sim_slot_info(sim_image_slot(img, 0), &m) != 0)
		return false;
	if (f->has_fail_boot_version)
		return smp_mcuboot_version_compare(&m->hdr.version, &f->fail_boot_version) == 0;
	return memcmp(m->hash, img->factory_hash, SIM_SHA_LEN) != 0;
}

/* Exchanges the slots' contents, as the swap algorithms end up doing. */
static void sim_image_swap(struct sim_image *img, enum sim_swap_type type,
			   struct sim_boot_report *rep)
{
	struct sim_slot *old = sim_image_slot(img, 0), *new = sim_image_slot(img, 1);

	rep->copied_bytes += MAX(old->len, new->len) * 2;
	img->primary = 1 - img->primary;
	new->tr = (struct sim_trailer){.magic = true,
				       .copy_done = true,
				       .image_ok = type != SIM_SWAP_TEST,
				       .swap_info = (uint8_t)type};
	old->tr = (struct sim_trailer){0};
}

int sim_image_boot(struct sim_image *img, const struct sim_faults *faults, bool auto_confirm,
		   struct sim_boot_report *ret)
{
	struct sim_boot_report rep = {.swap = SIM_SWAP_NONE};
	int r;

	sim_image_reset_upload(img);
	/* A crashing image makes the watchdog reset the device: MCUboot then
	 * runs again, so loop a few times at most. */
	for (unsigned attempt = 0; attempt < 3; attempt++) {
		enum sim_swap_type t = sim_image_swap_type(img);
		struct sim_slot *sec = sim_image_slot(img, 1);

		if (t == SIM_SWAP_TEST || t == SIM_SWAP_PERM) {
			if (!sim_slot_bootable(sec)) {
				/* boot_validate_slot(): an invalid secondary is erased. */
				rep.invalid_secondary = true;
				r = sim_slot_erase(img, sec, 0);
				if (r < 0)
					return r;
				t = SIM_SWAP_NONE;
			} else if (img->mode == 2) {
				/* Overwrite-only: copy, erase the secondary, no revert. */
				struct sim_slot *prim = sim_image_slot(img, 0);

				rep.copied_bytes += sec->len;
				img->primary = 1 - img->primary;
				prim->tr = (struct sim_trailer){0};
				sec->tr = (struct sim_trailer){0};
				r = sim_slot_erase(img, prim, 0);
				if (r < 0)
					return r;
			} else
				sim_image_swap(img, t, &rep);
		} else if (t == SIM_SWAP_REVERT) {
			sim_image_swap(img, t, &rep);
		}
		if (t != SIM_SWAP_NONE && attempt == 0)
			rep.swap = t;
		r = sim_image_save_state(img);
		if (r < 0)
			return r;

		if (!sim_slot_bootable(sim_image_slot(img, 0))) {
			rep.bricked = true;
			break;
		}
		if (!sim_image_fails(img, faults))
			break;
		/* The application crashed before confirming itself. MCUboot
		 * reverts on the next boot only if this was a test swap. */
		if (sim_image_swap_type(img) != SIM_SWAP_REVERT) {
			rep.bricked = true;
			break;
		}
		rep.failed_and_reverted = true;
	}
	if (!rep.bricked && auto_confirm) {
		r = sim_image_confirm_running(img);
		if (r < 0)
			return r;
	}
	sim_image_running_version(img, rep.version);
	*ret = rep;
	return 0;
}

int sim_image_confirm_running(struct sim_image *img)
{
	struct sim_slot *p = sim_image_slot(img, 0);

	/* boot_write_img_confirmed(): an unset magic means "already confirmed". */
	if (!p->tr.magic || p->tr.image_ok)
		return 0;
	p->tr.image_ok = true;
	return sim_image_save_state(img);
}

void sim_image_describe(struct sim_image *img, char *buf, size_t size)
{
	size_t n = 0;

	n += (size_t)snprintf(buf, size, "swap type: %s\n",
			      sim_swap_type_to_string(sim_image_swap_type(img)));
	for (unsigned slot = 0; slot < 2 && n < size; slot++) {
		struct sim_slot *s = sim_image_slot(img, slot);
		const struct smp_mcuboot_image *m;
		char ver[SMP_MCUBOOT_VERSION_STRING_MAX];

		n += (size_t)snprintf(buf + n, size - n, "%s area (slot %u):\n",
				      slot == 0 ? "primary" : "secondary", slot);
		if (n >= size)
			break;
		if (sim_slot_info(s, &m) == 0)
			n += (size_t)snprintf(
			    buf + n, size - n, "  version: %s\n  image size: %zu\n",
			    smp_mcuboot_version_string(&m->hdr.version, SMP_MCUBOOT_VERSION_IMGTOOL,
						       ver),
			    m->size);
		else
			n += (size_t)snprintf(buf + n, size - n, "  no valid image\n");
		if (n >= size)
			break;
		n += (size_t)snprintf(
		    buf + n, size - n, "  magic: %s\n  copy done: %s\n  image ok: %s\n",
		    s->tr.magic ? "good" : "unset", s->tr.copy_done ? "set" : "unset",
		    s->tr.image_ok ? "set" : "unset");
	}
}

/* ---- image group handlers ---- */

enum {
	SIM_REPORT_ACTIVE = 1 << 0,
	SIM_REPORT_PENDING = 1 << 1,
	SIM_REPORT_CONFIRMED = 1 << 2,
	SIM_REPORT_PERMANENT = 1 << 3,
};

static void sim_image_encode_slot(struct sim_ctx *c, struct sim_image *img, unsigned slot,
				  unsigned flags)
{
	const struct smp_mcuboot_image *m;
	char ver[SMP_MCUBOOT_VERSION_STRING_MAX];
	struct smp_buf *b = &c->rsp;

	if (sim_slot_info(sim_image_slot(img, slot), &m) != 0)
		return;
	smp_cbor_put_map_indef(b);
	smp_cbor_put_text(b, "slot");
	smp_cbor_put_uint(b, slot);
	smp_cbor_put_text(b, "version");
	smp_cbor_put_text(
	    b, smp_mcuboot_version_string(&m->hdr.version, SMP_MCUBOOT_VERSION_SMP, ver));
	smp_cbor_put_text(b, "hash");
	smp_cbor_put_bytes(b, m->hash, SIM_SHA_LEN);
	smp_cbor_put_text(b, "bootable");
	smp_cbor_put_bool(b, !(m->hdr.flags & SMP_MCUBOOT_F_NON_BOOTABLE));
	smp_cbor_put_text(b, "pending");
	smp_cbor_put_bool(b, flags & SIM_REPORT_PENDING);
	smp_cbor_put_text(b, "confirmed");
	smp_cbor_put_bool(b, flags & SIM_REPORT_CONFIRMED);
	smp_cbor_put_text(b, "active");
	smp_cbor_put_bool(b, flags & SIM_REPORT_ACTIVE);
	smp_cbor_put_text(b, "permanent");
	smp_cbor_put_bool(b, flags & SIM_REPORT_PERMANENT);
	smp_cbor_put_break(b);
}

int sim_image_state_read(struct sim_ctx *c)
{
	struct sim_image *img = sim_device_image(c->dev);
	enum sim_next_boot type;
	unsigned nbs = sim_image_next_boot(img, &type);
	unsigned flags_a = SIM_REPORT_ACTIVE, flags_o = 0;

	if (type != SIM_NEXT_REVERT)
		flags_a |= SIM_REPORT_CONFIRMED;
	if (nbs != 0) {
		if (type == SIM_NEXT_NORMAL)
			flags_o = SIM_REPORT_PENDING | SIM_REPORT_PERMANENT;
		else if (type == SIM_NEXT_REVERT)
			flags_o = SIM_REPORT_CONFIRMED;
		else
			flags_o = SIM_REPORT_PENDING;
	}
	smp_cbor_put_text(&c->rsp, "images");
	smp_cbor_put_array_indef(&c->rsp);
	sim_image_encode_slot(c, img, 0, flags_a);
	sim_image_encode_slot(c, img, 1, flags_o);
	smp_cbor_put_break(&c->rsp);
	smp_cbor_put_text(&c->rsp, "splitStatus");
	smp_cbor_put_int(&c->rsp, 0);
	return 0;
}

/* boot_set_next() on one slot's trailer. */
static int sim_image_set_next_common(struct sim_image *img, unsigned slot, bool confirm)
{
	struct sim_slot *s = sim_image_slot(img, slot);
	bool active = slot == 0;

	if (active)
		confirm = true;
	if (s->tr.magic) {
		/* Already scheduled when not active; confirm when active. */
		if (active && !s->tr.image_ok)
			s->tr.image_ok = true;
	} else if (!active) {
		s->tr.magic = true;
		s->tr.image_ok = confirm;
		s->tr.swap_info = confirm ? SIM_SWAP_PERM : SIM_SWAP_TEST;
	}
	if (sim_image_save_state(img) < 0)
		return SIM_IMG_ERR_FLASH_WRITE_FAILED;
	return 0;
}

/* img_mgmt_set_next_boot_slot() for one image in swap mode. */
static int sim_image_set_next(struct sim_image *img, unsigned slot, bool confirm)
{
	enum sim_next_boot type;
	unsigned nbs = sim_image_next_boot(img, &type);

	if (!confirm && slot == 0)
		return SIM_IMG_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED;
	if (type == SIM_NEXT_TEST) {
		if (!confirm && slot == nbs)
			return 0;
		return SIM_IMG_ERR_IMAGE_ALREADY_PENDING;
	}
	if (type == SIM_NEXT_NORMAL) {
		if (confirm && slot == nbs)
			return 0;
		if ((slot == 0 && nbs != 0) || (!confirm && slot != 0 && slot == nbs))
			return SIM_IMG_ERR_IMAGE_ALREADY_PENDING;
	}
	if (type == SIM_NEXT_REVERT) {
		if (confirm && slot == nbs)
			return 0;
		if (!confirm)
			return SIM_IMG_ERR_IMAGE_ALREADY_PENDING;
	}
	return sim_image_set_next_common(img, slot, confirm);
}

int sim_image_state_write(struct sim_ctx *c)
{
	struct sim_image *img = sim_device_image(c->dev);
	const uint8_t *hash = NULL;
	size_t hash_len = 0;
	bool confirm = false;
	unsigned slot;
	int rc;

	if (!sim_req_bytes(c, "hash", &hash, &hash_len, NULL) ||
	    !sim_req_bool(c, "confirm", &confirm, NULL))
		return SMP_RC_EINVAL;
	if (hash_len == 0) {
		if (!confirm) {
			sim_rsp_err(c, SMP_GROUP_IMAGE, SIM_IMG_ERR_INVALID_HASH);
			return 0;
		}
		slot = 0;
	} else if (hash_len != SIM_SHA_LEN) {
		sim_rsp_err(c, SMP_GROUP_IMAGE, SIM_IMG_ERR_INVALID_HASH);
		return 0;
	} else {
		for (slot = 0; slot < 2; slot++) {
			const struct smp_mcuboot_image *m;

			if (sim_slot_info(sim_image_slot(img, slot), &m) == 0 &&
			    memcmp(m->hash, hash, SIM_SHA_LEN) == 0)
				break;
		}
		if (slot == 2) {
			sim_rsp_err(c, SMP_GROUP_IMAGE, SIM_IMG_ERR_HASH_NOT_FOUND);
			return 0;
		}
	}
	rc = sim_image_set_next(img, slot, confirm);
	if (rc != 0) {
		sim_rsp_err(c, SMP_GROUP_IMAGE, (uint16_t)rc);
		return 0;
	}
	c->busy_us += sim_device_config(c->dev)->flash_write_us_per_kib / 64;
	return sim_image_state_read(c);
}

static void sim_image_sha_of_slot(struct sim_image *img, struct sim_slot *s, uint64_t size,
				  uint8_t out[SIM_SHA_LEN])
{
	struct sha256_ctx sha;
	uint64_t have = MIN(size, s->len);
	static const uint8_t ff[256] = {[0 ... 255] = 0xff};

	sha256_init(&sha);
	sha256_update(&sha, have, s->data);
	for (uint64_t left = size - have; left > 0;) {
		size_t n = MIN(left, sizeof(ff));

		sha256_update(&sha, n, ff);
		left -= n;
	}
	sha256_digest(&sha, SIM_SHA_LEN, out);
	if (img->stats) {
		img->stats->flash_read_calls++;
		img->stats->bytes_read += (uint32_t)size;
	}
}

/* flash_img_check(): the first size bytes of the slot hash to the session's
 * sha, padded with zeros to 32 bytes as Zephyr stores it. */
static bool sim_image_check(struct sim_image *img, struct sim_slot *s, uint64_t size)
{
	uint8_t digest[SIM_SHA_LEN];

	sim_image_sha_of_slot(img, s, size, digest);
	return memcmp(digest, img->up_sha, SIM_SHA_LEN) == 0;
}

int sim_image_upload(struct sim_ctx *c)
{
	struct sim_image *img = sim_device_image(c->dev);
	const struct sim_config *cfg = sim_device_config(c->dev);
	const uint8_t *data = NULL, *sha = NULL;
	size_t data_len = 0, sha_len = 0;
	uint64_t off = UINT64_MAX, len = UINT64_MAX;
	uint32_t image = 0;
	bool upgrade = false, last = false, reset = false, match = false, erase = false;
	unsigned slot = 1;
	struct sim_slot *s;
	int rc = 0;

	if (!sim_req_u32(c, "image", &image, NULL) ||
	    !sim_req_bytes(c, "data", &data, &data_len, NULL) ||
	    !sim_req_u64(c, "len", &len, NULL) || !sim_req_u64(c, "off", &off, NULL) ||
	    !sim_req_bytes(c, "sha", &sha, &sha_len, NULL) ||
	    !sim_req_bool(c, "upgrade", &upgrade, NULL))
		return SMP_RC_EINVAL;

	/* img_mgmt_upload_inspect() */
	if (off == UINT64_MAX) {
		rc = SIM_IMG_ERR_INVALID_OFFSET;
		goto end;
	}
	if (off == 0) {
		struct smp_mcuboot_version new_ver = {0}, running;
		const struct smp_mcuboot_image *cur;

		if (data_len < SMP_MCUBOOT_HEADER_SIZE) {
			rc = SIM_IMG_ERR_INVALID_IMAGE_HEADER;
			goto end;
		}
		if (len == UINT64_MAX) {
			rc = SIM_IMG_ERR_INVALID_LENGTH;
			goto end;
		}
		if (!(data[0] == 0x3d && data[1] == 0xb8 && data[2] == 0xf3 && data[3] == 0x96)) {
			rc = SIM_IMG_ERR_INVALID_IMAGE_HEADER_MAGIC;
			goto end;
		}
		if (sha_len > SIM_SHA_LEN) {
			rc = SIM_IMG_ERR_INVALID_HASH;
			goto end;
		}
		/* The same sha as the session in progress: resume it. */
		if (sha_len > 0 && img->up_active && img->up_sha_len == sha_len &&
		    memcmp(img->up_sha, sha, sha_len) == 0)
			goto good;
		if (sim_image_slot_in_use(img, 1)) {
			rc = SIM_IMG_ERR_NO_FREE_SLOT;
			goto end;
		}
		if (len > img->slot_size) {
			rc = SIM_IMG_ERR_INVALID_IMAGE_TOO_LARGE;
			goto end;
		}
		if (upgrade) {
			/* Zephyr reads only the version from the header; build
			 * numbers are not compared (..._VERSION_CMP_USE_BUILD_NUMBER=n). */
			new_ver.major = data[20];
			new_ver.minor = data[21];
			new_ver.revision = (uint16_t)(data[22] | data[23] << 8);
			if (sim_slot_info(sim_image_slot(img, 0), &cur) != 0) {
				rc = SIM_IMG_ERR_VERSION_GET_FAILED;
				goto end;
			}
			running = cur->hdr.version;
			running.build = 0;
			if (smp_mcuboot_version_compare(&running, &new_ver) >= 0) {
				rc = SIM_IMG_ERR_CURRENT_VERSION_IS_NEWER;
				goto end;
			}
		}
		erase = !sim_slot_empty(sim_image_slot(img, slot));
	} else {
		if (off != img->up_off)
			goto good;
		if (off + data_len > img->up_size) {
			rc = SIM_IMG_ERR_INVALID_IMAGE_DATA_OVERRUN;
			goto end;
		}
	}

	(void)image; /* one updatable image: the slot is chosen automatically */
	s = sim_image_slot(img, slot);
	if (off == 0) {
		img->up_active = true;
		img->up_size = len;
		img->up_off = 0;
		img->up_sha_len = sha_len;
		memset(img->up_sha, 0, sizeof(img->up_sha));
		if (sha_len)
			memcpy(img->up_sha, sha, sha_len);
		if (cfg->image_check && sha_len == SIM_SHA_LEN && sim_image_check(img, s, len)) {
			img->up_off = len;
			reset = last = match = true;
			goto end;
		}
		if (erase) {
			uint64_t erased =
			    (len + SIM_FLASH_PAGE - 1) / SIM_FLASH_PAGE * SIM_FLASH_PAGE +
			    SIM_FLASH_PAGE;
			uint64_t us = erased * cfg->flash_erase_us_per_kib / 1024;

			if (sim_slot_erase(img, s, len) < 0) {
				rc = 13; /* FLASH_ERASE_FAILED */
				goto end;
			}
			c->busy_us += us;
			sim_image_account(img, true, erased, us);
		}
	}
	if (data_len != 0) {
		uint64_t before = img->up_off;
		uint64_t us = data_len * cfg->flash_write_us_per_kib / 1024;

		last = img->up_off + data_len == img->up_size;
		if (sim_slot_write(img, s, off, data, data_len) < 0) {
			rc = SIM_IMG_ERR_FLASH_WRITE_FAILED;
			reset = true;
			goto end;
		}
		c->busy_us += us;
		sim_image_account(img, false, data_len, us);
		img->up_off += data_len;
		if (sim_device_upload_fault(c->dev, before, img->up_off)) {
			/* Power is lost while the chunk is being written: no answer. */
			c->power_loss = true;
			return 0;
		}
		if (img->up_off == img->up_size) {
			reset = true;
			sim_slot_trailer_from_data(img, s);
			if (s->tr.magic)
				sim_image_save_state(img);
			if (cfg->image_check)
				match = sim_image_check(img, s, img->up_size);
		}
	}
end:
	if (rc != 0) {
		sim_rsp_err(c, SMP_GROUP_IMAGE, (uint16_t)rc);
		sim_image_reset_upload(img);
		return 0;
	}
good:
	smp_cbor_put_text(&c->rsp, "off");
	smp_cbor_put_uint(&c->rsp, img->up_off);
	if (last && cfg->image_check) {
		smp_cbor_put_text(&c->rsp, "match");
		smp_cbor_put_bool(&c->rsp, match);
	}
	if (reset)
		sim_image_reset_upload(img);
	return 0;
}

int sim_image_erase(struct sim_ctx *c)
{
	struct sim_image *img = sim_device_image(c->dev);
	const struct sim_config *cfg = sim_device_config(c->dev);
	const struct smp_mcuboot_image *m;
	uint32_t slot = 1;
	struct sim_slot *s;
	uint64_t us;

	if (!sim_req_u32(c, "slot", &slot, NULL))
		return SMP_RC_EINVAL;
	if (slot > 1) {
		sim_rsp_err(c, SMP_GROUP_IMAGE, SIM_IMG_ERR_INVALID_SLOT);
		return 0;
	}
	s = sim_image_slot(img, slot);
	if (sim_slot_info(s, &m) == 0 && sim_image_slot_in_use(img, slot)) {
		sim_rsp_err(c, SMP_GROUP_IMAGE, SIM_IMG_ERR_NO_FREE_SLOT);
		return 0;
	}
	/* An erased slot is not erased again (img_mgmt_erase_slot). */
	if (!sim_slot_empty(s)) {
		us = (uint64_t)img->slot_size * cfg->flash_erase_us_per_kib / 1024;
		if (sim_slot_erase(img, s, 0) < 0) {
			sim_image_reset_upload(img);
			sim_rsp_err(c, SMP_GROUP_IMAGE, 13 /* FLASH_ERASE_FAILED */);
			return 0;
		}
		c->busy_us += us;
		sim_image_account(img, true, img->slot_size, us);
	}
	sim_image_reset_upload(img);
	return 0;
}

int sim_image_slot_info(struct sim_ctx *c)
{
	struct sim_image *img = sim_device_image(c->dev);
	struct smp_buf *b = &c->rsp;

	smp_cbor_put_text(b, "images");
	smp_cbor_put_array_indef(b);
	smp_cbor_put_map_indef(b);
	smp_cbor_put_text(b, "image");
	smp_cbor_put_uint(b, 0);
	smp_cbor_put_text(b, "slots");
	smp_cbor_put_array_indef(b);
	for (unsigned slot = 0; slot < 2; slot++) {
		smp_cbor_put_map_indef(b);
		smp_cbor_put_text(b, "slot");
		smp_cbor_put_uint(b, slot);
		smp_cbor_put_text(b, "size");
		smp_cbor_put_uint(b, img->slot_size);
		if (slot != 0) {
			/* The upload "image" value that lands in this slot. */
			smp_cbor_put_text(b, "upload_image_id");
			smp_cbor_put_uint(b, 0);
		}
		smp_cbor_put_break(b);
	}
	smp_cbor_put_break(b);
	smp_cbor_put_break(b);
	smp_cbor_put_break(b);
	return 0;
}
