/* smp-fs: requests and response parsers of the file system group (8) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-request.h"
#include "smp-response.h"

/* Builder and parser conventions are those of smp-os.h. name is an absolute
 * path on the device ("/lfs/log.txt") and must not be empty (-EINVAL). */

/* Download (cmd 0, READ): {"off", "name"} → {"off", "data", "len" (off == 0 only)}. */
int smp_fs_download_request(const char *name, uint64_t off, struct smp_request **ret);

struct smp_fs_download {
	uint64_t off; /* the offset of data (the device echoes the request's) */
	bool has_len;
	uint64_t len; /* total file size, sent with off == 0 */
	size_t data_len;
	uint8_t data[]; /* data_len bytes */
};

int smp_fs_download_parse(const struct smp_response *rsp, struct smp_fs_download **ret);
struct smp_fs_download *smp_fs_download_free(struct smp_fs_download *d);

/* Upload (cmd 0, WRITE): {"name", "off", "len" (off == 0 only), "data"}; the
 * key order is the one Zephyr 4.1's recorded client used. data is copied
 * once, into the packet. -EINVAL for an empty name or NULL data with
 * data_len > 0; -EMSGSIZE past the 16-bit length. */
struct smp_fs_upload_args {
	uint64_t off;
	const uint8_t *data;
	size_t data_len;
	const char *name;
	uint64_t len; /* total file size: sent only when off == 0 */
};

int smp_fs_upload_request(const struct smp_fs_upload_args *a, struct smp_request **ret);
/* Wire size of the whole packet (header included) for these args with
 * data_len = 0; n data bytes add smp_cbor_str_size(n) - 1. */
size_t smp_fs_upload_packet_size(const struct smp_fs_upload_args *a);
/* → {"off": uint}: bytes now in the file (the next offset to send). */
int smp_fs_upload_parse(const struct smp_response *rsp, uint64_t *ret);
/* The "len" (file size on the device) that a FILE_OFFSET_NOT_VALID error
 * response carries beside its error. Returns 0, -EINVAL when rsp is not an
 * error response, -ENOENT when it has no "len", -EBADMSG for a wrong type. */
int smp_fs_upload_error_len(const struct smp_response *rsp, uint64_t *ret);

/* Status (cmd 1, READ): {"name"} → {"len": uint}. */
int smp_fs_status_request(const char *name, struct smp_request **ret);
int smp_fs_status_parse(const struct smp_response *rsp, uint64_t *ret);

/* Hash/checksum (cmd 2, READ): {"name", "type"?, "off"?, "len"?}; type NULL,
 * off 0 and len 0 (whole file) leave the key out. */
#define SMP_FS_HASH_CRC32 "crc32"
#define SMP_FS_HASH_SHA256 "sha256"

int smp_fs_hash_request(const char *name, const char *type, uint64_t off, uint64_t len,
			struct smp_request **ret);

/* → {"type", "off"?, "len", "output": uint | bytes}. */
struct smp_fs_hash {
	char *type;
	uint64_t off; /* 0 when absent */
	uint64_t len; /* bytes actually hashed */
	bool output_is_bytes;
	uint64_t output_uint; /* numeric types (crc32) */
	uint8_t *output;      /* byte types (sha256); NULL for numeric ones */
	size_t output_len;
};

int smp_fs_hash_parse(const struct smp_response *rsp, struct smp_fs_hash **ret);
struct smp_fs_hash *smp_fs_hash_free(struct smp_fs_hash *h);

/* Supported hash types (cmd 3, READ): {} → {"types": {name: {"format", "size"}}}. */
enum {
	SMP_FS_HASH_FORMAT_NUMBER = 0,
	SMP_FS_HASH_FORMAT_BYTES = 1,
};

struct smp_fs_type {
	char *name;
	uint32_t format; /* SMP_FS_HASH_FORMAT_* */
	uint32_t size;   /* output size in bytes */
};

struct smp_fs_types {
	size_t n_types;
	struct smp_fs_type *types;
};

int smp_fs_types_request(struct smp_request **ret);
int smp_fs_types_parse(const struct smp_response *rsp, struct smp_fs_types **ret);
struct smp_fs_types *smp_fs_types_free(struct smp_fs_types *t);

/* Close (cmd 4, WRITE): {} → {}. */
int smp_fs_close_request(struct smp_request **ret);
