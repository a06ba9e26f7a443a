/* db-firmware: the firmware table: stored MCUboot images, and whether rollouts still need them */
#pragma once

#include <stdint.h>

struct db;
struct db_firmware;

/* One row. Strings handed to a callback live until it returns (they point
 * into sqlite's row): copy what you keep. */
struct db_firmware_row {
	const char *sha256;     /* of the whole file, hex: the primary key */
	const char *image_hash; /* the SHA-256 TLV, hex */
	const char *version;    /* "1.2.3" or "1.2.3.4" */
	uint64_t size;
	const char *name;
	const char *metadata;   /* JSON object */
	uint64_t created_at_ms;
};

typedef int (*db_firmware_row_fn)(const struct db_firmware_row *row, void *userdata);

/* The statements on the firmware table, prepared at first use and kept until
 * db_firmware_free(), which must run before db_close(). db is borrowed. */
int db_firmware_new(struct db *db, struct db_firmware **ret);
struct db_firmware *db_firmware_free(struct db_firmware *df);

/* Inserts the row, or brings back a row removed earlier with the same
 * sha256 (see db_firmware_delete). Returns 0, -EEXIST when a live row has
 * this sha256, -EBUSY, -EIO. */
int db_firmware_insert(struct db_firmware *df, const struct db_firmware_row *row);

/* Calls cb with the live row of this sha256. Returns cb's return (>= 0),
 * -ENOENT, or -errno. */
int db_firmware_get(struct db_firmware *df, const char *sha256, db_firmware_row_fn cb,
		    void *userdata);

/* Calls cb for every live row, newest first; a negative return from cb stops
 * the walk and is returned. Returns the number of rows or -errno. */
int db_firmware_load(struct db_firmware *df, db_firmware_row_fn cb, void *userdata);

/* Whether a rollout that is not final (state other than completed, canceled,
 * failed) or an enabled auto-update rule refers to this image. Returns 1, 0,
 * or -errno. */
int db_firmware_in_use(struct db_firmware *df, const char *sha256);

/* Removes the live row. Rollouts and rules that are over keep referring to
 * their image (the history stays readable), so a row they still name is
 * only marked removed (deleted_at) instead of deleted; it no longer shows in
 * get, load or in_use and db_firmware_insert() brings it back. Returns 0,
 * -ENOENT when no live row has this sha256, -errno. Callers check
 * db_firmware_in_use() first. */
int db_firmware_delete(struct db_firmware *df, const char *sha256, uint64_t now_ms);
