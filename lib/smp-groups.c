/* smp-groups: the typed parser for any standard response, chosen by its header */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-cbor.h"
#include "smp-enum.h"
#include "smp-fs.h"
#include "smp-groups-internal.h"
#include "smp-groups.h"
#include "smp-image.h"
#include "smp-os.h"
#include "smp-settings.h"
#include "smp-shell.h"
#include "smp-stat.h"

/* ---- field getters shared by the group parsers ------------------------------ */

int smp_groups_root(const struct smp_response *rsp, const cbor_item_t **ret)
{
	if (rsp->status.kind != SMP_STATUS_OK)
		return -EREMOTEIO;
	if (!rsp->root || !cbor_isa_map(rsp->root))
		return -EBADMSG;
	*ret = rsp->root;
	return 0;
}

int smp_groups_item_uint(const cbor_item_t *item, uint64_t max, uint64_t *ret)
{
	uint64_t v;

	if (smp_cbor_item_uint(item, &v) < 0 || v > max)
		return -EBADMSG;
	*ret = v;
	return 0;
}

int smp_groups_opt_uint(const cbor_item_t *map, const char *key, uint64_t max, uint64_t *ret)
{
	const cbor_item_t *v = smp_cbor_map_get(map, key);
	int r;

	if (!v)
		return 0;
	r = smp_groups_item_uint(v, max, ret);
	return r < 0 ? r : 1;
}

int smp_groups_req_uint(const cbor_item_t *map, const char *key, uint64_t max, uint64_t *ret)
{
	int r = smp_groups_opt_uint(map, key, max, ret);

	return r == 0 ? -EBADMSG : r < 0 ? r : 0;
}

int smp_groups_opt_int(const cbor_item_t *map, const char *key, int64_t min, int64_t max,
		       int64_t *ret)
{
	const cbor_item_t *v = smp_cbor_map_get(map, key);
	int64_t i;

	if (!v)
		return 0;
	/* -ERANGE (beyond int64) is as malformed as a wrong type here. */
	if (smp_cbor_item_int(v, &i) < 0 || i < min || i > max)
		return -EBADMSG;
	*ret = i;
	return 1;
}

int smp_groups_req_int(const cbor_item_t *map, const char *key, int64_t min, int64_t max,
		       int64_t *ret)
{
	int r = smp_groups_opt_int(map, key, min, max, ret);

	return r == 0 ? -EBADMSG : r < 0 ? r : 0;
}

int smp_groups_opt_bool(const cbor_item_t *map, const char *key, bool *ret)
{
	int r = smp_cbor_get_bool(map, key, ret);

	return r == -ENOENT ? 0 : r < 0 ? -EBADMSG : 1;
}

int smp_groups_opt_text(const cbor_item_t *map, const char *key, char **ret)
{
	int r = smp_cbor_get_text(map, key, ret);

	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

int smp_groups_req_text(const cbor_item_t *map, const char *key, char **ret)
{
	int r = smp_groups_opt_text(map, key, ret);

	return r == 0 ? -EBADMSG : r < 0 ? r : 0;
}

int smp_groups_req_bytes(const cbor_item_t *map, const char *key, uint8_t **ret, size_t *ret_len)
{
	const uint8_t *p;
	uint8_t *copy;
	size_t n;
	int r;

	r = smp_cbor_get_bytes(map, key, &p, &n);
	if (r < 0)
		return -EBADMSG;
	copy = malloc(n ? n : 1);
	if (!copy)
		return -ENOMEM;
	if (n)
		memcpy(copy, p, n);
	*ret = copy;
	*ret_len = n;
	return 0;
}

int smp_groups_req_array(const cbor_item_t *map, const char *key, const cbor_item_t **ret)
{
	const cbor_item_t *v = smp_cbor_map_get(map, key);

	if (!v || !cbor_isa_array(v))
		return -EBADMSG;
	*ret = v;
	return 0;
}

int smp_groups_root_array(const struct smp_response *rsp, const char *key,
			  const cbor_item_t **ret_root, cbor_item_t ***ret_items, size_t *ret_n)
{
	const cbor_item_t *root, *array;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	r = smp_groups_req_array(root, key, &array);
	if (r < 0)
		return r;
	if (ret_root)
		*ret_root = root;
	*ret_items = cbor_array_handle(array);
	*ret_n = cbor_array_size(array);
	return 0;
}

int smp_groups_root_map(const struct smp_response *rsp, const char *key,
			const cbor_item_t **ret_root, struct cbor_pair **ret_pairs, size_t *ret_n)
{
	const cbor_item_t *root, *map;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	r = smp_groups_req_map(root, key, &map);
	if (r < 0)
		return r;
	if (ret_root)
		*ret_root = root;
	*ret_pairs = cbor_map_handle(map);
	*ret_n = cbor_map_size(map);
	return 0;
}

int smp_groups_req_map(const cbor_item_t *map, const char *key, const cbor_item_t **ret)
{
	const cbor_item_t *v = smp_cbor_map_get(map, key);

	if (!v || !cbor_isa_map(v))
		return -EBADMSG;
	*ret = v;
	return 0;
}

void *smp_groups_calloc(size_t n, size_t size)
{
	return calloc(n ? n : 1, size);
}

/* ---- the dispatcher ------------------------------------------------------------ */

int smp_groups_parse_empty(const struct smp_response *rsp)
{
	const cbor_item_t *root;

	return smp_groups_root(rsp, &root);
}

static int parse_text(const struct smp_response *rsp,
		      int (*parse)(const struct smp_response *, char **))
{
	char *s = NULL;
	int r = parse(rsp, &s);

	free(s);
	return r;
}

#define PARSE_AND_FREE(rsp, type, parse, free_fn)      \
	({                                             \
		type *_res = NULL;                     \
		int _r = parse((rsp), &_res);          \
		free_fn(_res);                         \
		_r;                                    \
	})

static int parse_os(const struct smp_response *rsp, bool write)
{
	switch (rsp->hdr.id) {
	case SMP_OS_ECHO:
		return parse_text(rsp, smp_os_echo_parse);
	case SMP_OS_CONSOLE_ECHO:
		return smp_groups_parse_empty(rsp);
	case SMP_OS_TASKSTAT:
		if (write)
			break;
		return PARSE_AND_FREE(rsp, struct smp_os_taskstat, smp_os_taskstat_parse,
				      smp_os_taskstat_free);
	case SMP_OS_MPSTAT:
		if (write)
			break;
		return PARSE_AND_FREE(rsp, struct smp_os_mpstat, smp_os_mpstat_parse,
				      smp_os_mpstat_free);
	case SMP_OS_DATETIME:
		return write ? smp_groups_parse_empty(rsp) : parse_text(rsp, smp_os_datetime_parse);
	case SMP_OS_RESET:
		if (!write)
			break;
		return smp_groups_parse_empty(rsp);
	case SMP_OS_PARAMS: {
		struct smp_os_params p;

		if (write)
			break;
		return smp_os_params_parse(rsp, &p);
	}
	case SMP_OS_INFO:
		if (write)
			break;
		return parse_text(rsp, smp_os_info_parse);
	case SMP_OS_BOOTLOADER:
		if (write)
			break;
		return PARSE_AND_FREE(rsp, struct smp_os_bootloader_info, smp_os_bootloader_parse,
				      smp_os_bootloader_info_free);
	}
	return -ENOTSUP;
}

static int parse_image(const struct smp_response *rsp, bool write)
{
	switch (rsp->hdr.id) {
	case SMP_IMAGE_STATE:
		return PARSE_AND_FREE(rsp, struct smp_image_state, smp_image_state_parse,
				      smp_image_state_free);
	case SMP_IMAGE_UPLOAD: {
		struct smp_image_upload_result u;

		if (!write)
			break;
		return smp_image_upload_parse(rsp, &u);
	}
	case SMP_IMAGE_ERASE:
		if (!write)
			break;
		return smp_groups_parse_empty(rsp);
	case SMP_IMAGE_SLOT_INFO:
		if (write)
			break;
		return PARSE_AND_FREE(rsp, struct smp_image_slot_info, smp_image_slot_info_parse,
				      smp_image_slot_info_free);
	}
	return -ENOTSUP;
}

static int parse_stat(const struct smp_response *rsp, bool write)
{
	if (write)
		return -ENOTSUP;
	switch (rsp->hdr.id) {
	case SMP_STAT_SHOW:
		return PARSE_AND_FREE(rsp, struct smp_stat_group, smp_stat_show_parse,
				      smp_stat_group_free);
	case SMP_STAT_LIST:
		return PARSE_AND_FREE(rsp, struct smp_stat_list, smp_stat_list_parse,
				      smp_stat_list_free);
	}
	return -ENOTSUP;
}

static int parse_settings(const struct smp_response *rsp, bool write)
{
	switch (rsp->hdr.id) {
	case SMP_SETTINGS_VALUE:
		if (write)
			return smp_groups_parse_empty(rsp);
		return PARSE_AND_FREE(rsp, struct smp_settings_value, smp_settings_read_parse,
				      smp_settings_value_free);
	case SMP_SETTINGS_DELETE:
	case SMP_SETTINGS_COMMIT:
		if (!write)
			break;
		return smp_groups_parse_empty(rsp);
	case SMP_SETTINGS_LOAD_SAVE:
		return smp_groups_parse_empty(rsp);
	}
	return -ENOTSUP;
}

static int parse_fs(const struct smp_response *rsp, bool write)
{
	uint64_t v;

	switch (rsp->hdr.id) {
	case SMP_FS_FILE:
		if (write)
			return smp_fs_upload_parse(rsp, &v);
		return PARSE_AND_FREE(rsp, struct smp_fs_download, smp_fs_download_parse,
				      smp_fs_download_free);
	case SMP_FS_STATUS:
		if (write)
			break;
		return smp_fs_status_parse(rsp, &v);
	case SMP_FS_HASH:
		if (write)
			break;
		return PARSE_AND_FREE(rsp, struct smp_fs_hash, smp_fs_hash_parse, smp_fs_hash_free);
	case SMP_FS_TYPES:
		if (write)
			break;
		return PARSE_AND_FREE(rsp, struct smp_fs_types, smp_fs_types_parse,
				      smp_fs_types_free);
	case SMP_FS_CLOSE:
		if (!write)
			break;
		return smp_groups_parse_empty(rsp);
	}
	return -ENOTSUP;
}

static int parse_enum(const struct smp_response *rsp, bool write)
{
	if (write)
		return -ENOTSUP;
	switch (rsp->hdr.id) {
	case SMP_ENUM_COUNT: {
		uint32_t n;

		return smp_enum_count_parse(rsp, &n);
	}
	case SMP_ENUM_LIST:
		return PARSE_AND_FREE(rsp, struct smp_enum_list, smp_enum_list_parse,
				      smp_enum_list_free);
	case SMP_ENUM_SINGLE: {
		struct smp_enum_single s;

		return smp_enum_single_parse(rsp, &s);
	}
	case SMP_ENUM_DETAILS:
		return PARSE_AND_FREE(rsp, struct smp_enum_details, smp_enum_details_parse,
				      smp_enum_details_free);
	}
	return -ENOTSUP;
}

int smp_groups_parse_any(const struct smp_response *rsp)
{
	bool write;

	if (!smp_op_is_response(rsp->hdr.op))
		return -ENOTSUP;
	write = rsp->hdr.op == SMP_OP_WRITE_RSP;

	switch (rsp->hdr.group) {
	case SMP_GROUP_OS:
		return parse_os(rsp, write);
	case SMP_GROUP_IMAGE:
		return parse_image(rsp, write);
	case SMP_GROUP_STAT:
		return parse_stat(rsp, write);
	case SMP_GROUP_SETTINGS:
		return parse_settings(rsp, write);
	case SMP_GROUP_FS:
		return parse_fs(rsp, write);
	case SMP_GROUP_SHELL:
		if (rsp->hdr.id != SMP_SHELL_EXEC || !write)
			return -ENOTSUP;
		return PARSE_AND_FREE(rsp, struct smp_shell_result, smp_shell_exec_parse,
				      smp_shell_result_free);
	case SMP_GROUP_ENUM:
		return parse_enum(rsp, write);
	case SMP_GROUP_ZEPHYR:
		if (rsp->hdr.id != SMP_ZEPHYR_ERASE_STORAGE || !write)
			return -ENOTSUP;
		return smp_groups_parse_empty(rsp);
	}
	return -ENOTSUP;
}
