/* sim-smp: what a command handler of the simulated SMP server sees: request, response, effects */
#pragma once

#include <cbor.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-buf.h"
#include "smp-header.h"

struct sim_device;

/* The flash simulator's counters (Zephyr's flash_sim_stats), moved by every
 * slot and file system access. */
struct sim_flash_stats {
	uint32_t bytes_read;
	uint32_t bytes_written;
	uint32_t double_writes;
	uint32_t flash_read_calls;
	uint32_t flash_read_time_us;
	uint32_t flash_write_calls;
	uint32_t flash_write_time_us;
	uint32_t flash_erase_calls;
	uint32_t flash_erase_time_us;
};

/* One request being handled, as Zephyr's smp_streamer holds it. */
struct sim_ctx {
	struct sim_device *dev;
	struct smp_header hdr;
	const uint8_t *payload;
	size_t payload_len;
	/* The payload decoded as CBOR when it is a map, else NULL. Handlers that
	 * decode their arguments answer EINVAL without it, as zcbor's bulk
	 * decoder fails; handlers without arguments never look. */
	cbor_item_t *map;
	/* Which transport the request came in on: the file system group owns
	 * its open file per transport. Compared, never dereferenced. */
	const void *link;

	/* The response map under construction: handlers append key/value pairs
	 * between the opening BF and the closing FF the dispatcher writes. */
	struct smp_buf rsp;
	/* Set by sim_rsp_err(): the v1 path translates it to an "rc". */
	uint16_t err_group;
	uint16_t err_rc;

	/* Effects for the loop. */
	uint64_t busy_us; /* time the handler kept the device busy (flash) */
	bool reset;	  /* reboot once the response is out */
	bool power_loss;  /* reboot now, without any response */
};

/* A command handler returns 0 (the response is in rsp, possibly with an
 * "err" map) or a generic MCUmgr code (enum smp_rc) that replaces the whole
 * response with {"rc": code}. */
typedef int (*sim_handler_fn)(struct sim_ctx *c);

/* Typed lookups in the request map, with zcbor_map_decode_bulk semantics:
 * a missing key leaves *ret alone and *found false; a key of the wrong type
 * (or out of range) is a decode failure. Return true on success, false when
 * the request has no map or the value does not decode. found may be NULL. */
bool sim_req_map(const struct sim_ctx *c);
bool sim_req_u32(const struct sim_ctx *c, const char *key, uint32_t *ret, bool *found);
bool sim_req_u64(const struct sim_ctx *c, const char *key, uint64_t *ret, bool *found);
bool sim_req_bool(const struct sim_ctx *c, const char *key, bool *ret, bool *found);
/* Borrowed from the request, valid during the handler. */
bool sim_req_text(const struct sim_ctx *c, const char *key, const char **ret, size_t *ret_len,
		  bool *found);
bool sim_req_bytes(const struct sim_ctx *c, const char *key, const uint8_t **ret, size_t *ret_len,
		   bool *found);

/* Appends "err": {"group": g, "rc": rc} (nothing for rc 0) and remembers it
 * for the v1 translation, like Zephyr's smp_add_cmd_err(). */
void sim_rsp_err(struct sim_ctx *c, uint16_t group, uint16_t rc);

/* The generic code a v2-capable Zephyr reports to a v1 request for a group
 * error (smp-protocol.md §4.6, the groups' mg_translate_error). May be 0. */
int sim_translate_error(uint16_t group, uint16_t rc);

/* Zephyr's group error codes used by the handlers. */
enum {
	SIM_OS_ERR_INVALID_FORMAT = 2,
	SIM_OS_ERR_QUERY_YIELDS_NO_ANSWER = 3,
	SIM_OS_ERR_RTC_NOT_SET = 4,
	SIM_OS_ERR_RTC_COMMAND_FAILED = 5,

	SIM_IMG_ERR_NO_IMAGE = 3,
	SIM_IMG_ERR_NO_TLVS = 4,
	SIM_IMG_ERR_HASH_NOT_FOUND = 8,
	SIM_IMG_ERR_NO_FREE_SLOT = 9,
	SIM_IMG_ERR_FLASH_WRITE_FAILED = 12,
	SIM_IMG_ERR_INVALID_SLOT = 14,
	SIM_IMG_ERR_INVALID_OFFSET = 20,
	SIM_IMG_ERR_INVALID_LENGTH = 21,
	SIM_IMG_ERR_INVALID_IMAGE_HEADER = 22,
	SIM_IMG_ERR_INVALID_IMAGE_HEADER_MAGIC = 23,
	SIM_IMG_ERR_INVALID_HASH = 24,
	SIM_IMG_ERR_VERSION_GET_FAILED = 26,
	SIM_IMG_ERR_CURRENT_VERSION_IS_NEWER = 27,
	SIM_IMG_ERR_IMAGE_ALREADY_PENDING = 28,
	SIM_IMG_ERR_INVALID_IMAGE_VECTOR_TABLE = 29,
	SIM_IMG_ERR_INVALID_IMAGE_TOO_LARGE = 30,
	SIM_IMG_ERR_INVALID_IMAGE_DATA_OVERRUN = 31,
	SIM_IMG_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED = 33,

	SIM_SETTINGS_ERR_KEY_TOO_LONG = 2,
	SIM_SETTINGS_ERR_KEY_NOT_FOUND = 3,
	SIM_SETTINGS_ERR_READ_NOT_SUPPORTED = 4,
	SIM_SETTINGS_ERR_ROOT_KEY_NOT_FOUND = 5,
	SIM_SETTINGS_ERR_WRITE_NOT_SUPPORTED = 6,
	SIM_SETTINGS_ERR_DELETE_NOT_SUPPORTED = 7,

	SIM_FS_ERR_FILE_INVALID_NAME = 2,
	SIM_FS_ERR_FILE_NOT_FOUND = 3,
	SIM_FS_ERR_FILE_IS_DIRECTORY = 4,
	SIM_FS_ERR_FILE_OPEN_FAILED = 5,
	SIM_FS_ERR_FILE_SEEK_FAILED = 6,
	SIM_FS_ERR_FILE_READ_FAILED = 7,
	SIM_FS_ERR_FILE_TRUNCATE_FAILED = 8,
	SIM_FS_ERR_FILE_DELETE_FAILED = 9,
	SIM_FS_ERR_FILE_WRITE_FAILED = 10,
	SIM_FS_ERR_FILE_OFFSET_NOT_VALID = 11,
	SIM_FS_ERR_FILE_OFFSET_LARGER_THAN_FILE = 12,
	SIM_FS_ERR_CHECKSUM_HASH_NOT_FOUND = 13,
	SIM_FS_ERR_MOUNT_POINT_NOT_FOUND = 14,
	SIM_FS_ERR_READ_ONLY_FILESYSTEM = 15,
	SIM_FS_ERR_FILE_EMPTY = 16,

	SIM_SHELL_ERR_COMMAND_TOO_LONG = 2,
	SIM_SHELL_ERR_EMPTY_COMMAND = 3,

	SIM_ENUM_ERR_TOO_MANY_GROUP_ENTRIES = 2,
	SIM_ENUM_ERR_INDEX_TOO_LARGE = 4,

	SIM_ZB_ERR_FLASH_OPEN_FAILED = 2,
	SIM_ZB_ERR_FLASH_CONFIG_QUERY_FAIL = 3,
	SIM_ZB_ERR_FLASH_ERASE_FAILED = 4,
};
