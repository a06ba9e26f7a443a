/* gw-firmware: the firmware store: MCUboot images validated, kept once by SHA-256 under the state directory */
#pragma once

#include <jansson.h>
#include <stdint.h>

struct gw_manager;
struct gw_firmware;

/* Images live as files <state_dir>/firmware/<sha256> (created 0700 when
 * missing), rows in the firmware table (db/db-firmware). At start, rows
 * whose file is missing or has the wrong size are logged and dropped and
 * files without a row are removed (an add that crashed midway). Returns 0
 * or -errno. */
int gw_firmware_new(struct gw_manager *m, struct gw_firmware **ret);
struct gw_firmware *gw_firmware_free(struct gw_firmware *fw);

/* Adds the image read from fd (from its current offset to EOF; at most
 * m->config.max_body bytes): parses it with smp-mcuboot (header, TLVs, the
 * SHA-256 TLV checked against the image), computes the SHA-256 of the whole
 * file, and stores it (temp file in the store, fsync, rename, then the row).
 * name may be NULL. *ret_info gets the description below.
 * Returns 0 when added, 1 when that exact file was already stored (same
 * info), -EBADMSG with a sentence in err for a file that is not a valid
 * MCUboot image, -EINVAL for a name over 128 bytes, not UTF-8 or with
 * control characters, -EFBIG, -ENOSPC, -EIO, -ENOMEM.
 * With m->events set, an added image is published as "firmware.added"
 * {"id", "version", "image_hash", "name"} and a removed one as
 * "firmware.removed" {"id"}. */
int gw_firmware_add_fd(struct gw_firmware *fw, int fd, const char *name, json_t **ret_info,
		       char *err, size_t errlen);

/* The description of one image: {"id": sha256 hex (of the whole file: the
 * "sha" an upload announces), "image_hash": hex (the SHA-256 TLV: what the
 * device reports in image state), "version": "1.2.3" or "1.2.3.4" (as SMP
 * reports it), "size": n, "name": "...", "created_at": ms, "header":
 * {"load_addr", "hdr_size", "img_size", "protect_tlv_size", "flags": [...]},
 * "tlvs": [{"type": n, "name": "SHA256" (null for unknown types), "len": n},
 * ...], "protected_tlvs": [...]}. id is matched case-insensitively.
 * Returns 0, -ENOENT. */
int gw_firmware_get(struct gw_firmware *fw, const char *id, json_t **ret);
/* Every image, newest first. */
int gw_firmware_list(struct gw_firmware *fw, json_t **ret);
/* Opens the file for reading (O_RDONLY|O_CLOEXEC). Returns 0, -ENOENT. */
int gw_firmware_open(struct gw_firmware *fw, const char *id, int *ret_fd, uint64_t *ret_size);
/* Removes an image: -EBUSY while a rollout or auto-update that is not
 * finished refers to it, -ENOENT. A row that finished rollouts or disabled
 * rules still name is kept, marked removed (firmware.deleted_at): get, list
 * and open no longer see it; adding the same file again brings it back. */
int gw_firmware_remove(struct gw_firmware *fw, const char *id);

/* Compares two SMP version strings ("1.2.3" / "1.2.3.4", a missing build is
 * 0): *ret < 0, 0, > 0. Returns 0, or -EINVAL for unparsable input. */
int gw_firmware_version_compare(const char *a, const char *b, int *ret);
