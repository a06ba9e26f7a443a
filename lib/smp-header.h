/* smp-header: the 8-byte SMP header, ops, versions, group and command ids */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMP_HEADER_SIZE 8
/* Length is a 16-bit field, so no SMP packet is larger than this. */
#define SMP_PACKET_MAX (SMP_HEADER_SIZE + UINT16_MAX)

enum smp_op {
	SMP_OP_READ = 0,
	SMP_OP_READ_RSP = 1,
	SMP_OP_WRITE = 2,
	SMP_OP_WRITE_RSP = 3,
};

enum smp_version {
	SMP_VERSION_1 = 0, /* original MCUmgr: errors as "rc" */
	SMP_VERSION_2 = 1, /* group errors as "err": {group, rc} */
};

enum smp_group {
	SMP_GROUP_OS = 0,
	SMP_GROUP_IMAGE = 1,
	SMP_GROUP_STAT = 2,
	SMP_GROUP_SETTINGS = 3,
	SMP_GROUP_LOG = 4,
	SMP_GROUP_CRASH = 5,
	SMP_GROUP_SPLIT = 6,
	SMP_GROUP_RUN = 7,
	SMP_GROUP_FS = 8,
	SMP_GROUP_SHELL = 9,
	SMP_GROUP_ENUM = 10,
	SMP_GROUP_TRANSPORT = 11,
	SMP_GROUP_ZEPHYR = 63,
	SMP_GROUP_USER_MIN = 64, /* 64..65535: application-defined */
};

enum smp_os_cmd {
	SMP_OS_ECHO = 0,
	SMP_OS_CONSOLE_ECHO = 1,
	SMP_OS_TASKSTAT = 2,
	SMP_OS_MPSTAT = 3,
	SMP_OS_DATETIME = 4,
	SMP_OS_RESET = 5,
	SMP_OS_PARAMS = 6,
	SMP_OS_INFO = 7,
	SMP_OS_BOOTLOADER = 8,
};

enum smp_image_cmd {
	SMP_IMAGE_STATE = 0,
	SMP_IMAGE_UPLOAD = 1,
	SMP_IMAGE_ERASE = 5,
	SMP_IMAGE_SLOT_INFO = 6,
};

enum smp_stat_cmd {
	SMP_STAT_SHOW = 0,
	SMP_STAT_LIST = 1,
};

enum smp_settings_cmd {
	SMP_SETTINGS_VALUE = 0, /* read (R) / write (W) */
	SMP_SETTINGS_DELETE = 1,
	SMP_SETTINGS_COMMIT = 2,
	SMP_SETTINGS_LOAD_SAVE = 3, /* load (R) / save (W) */
};

enum smp_fs_cmd {
	SMP_FS_FILE = 0, /* download (R) / upload (W) */
	SMP_FS_STATUS = 1,
	SMP_FS_HASH = 2,
	SMP_FS_TYPES = 3,
	SMP_FS_CLOSE = 4,
};

enum smp_shell_cmd {
	SMP_SHELL_EXEC = 0,
};

enum smp_enum_cmd {
	SMP_ENUM_COUNT = 0,
	SMP_ENUM_LIST = 1,
	SMP_ENUM_SINGLE = 2,
	SMP_ENUM_DETAILS = 3,
};

enum smp_zephyr_cmd {
	SMP_ZEPHYR_ERASE_STORAGE = 0,
};

struct smp_header {
	uint8_t version; /* enum smp_version; 2 and 3 are reserved but representable */
	uint8_t op;      /* enum smp_op; 4..7 invalid but representable */
	uint8_t flags;
	uint16_t len;    /* CBOR payload length, excluding the header */
	uint16_t group;
	uint8_t seq;
	uint8_t id;      /* command id within the group */
};

/* Writes the header in wire order (big-endian). Reserved bits are sent as 0. */
void smp_header_encode(const struct smp_header *h, uint8_t out[SMP_HEADER_SIZE]);

/* Reads a header from the first 8 bytes of buf. Reserved bits are ignored.
 * Returns 0, or -EBADMSG when len < 8. Does not check the length field. */
int smp_header_decode(const uint8_t *buf, size_t len, struct smp_header *ret);

static inline bool smp_op_is_response(uint8_t op)
{
	return op == SMP_OP_READ_RSP || op == SMP_OP_WRITE_RSP;
}

/* Names for logs and JSON. Unknown values give NULL. */
const char *smp_op_to_string(uint8_t op);
const char *smp_group_to_string(uint16_t group);
/* "echo", "upload", ...; NULL for an unknown (group, id). op decides between
 * names that share an id (settings read/write, FS download/upload, load/save). */
const char *smp_command_to_string(uint16_t group, uint8_t id, uint8_t op);
