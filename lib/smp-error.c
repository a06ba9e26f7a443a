/* smp-error: classifying responses (ok, "rc", "err"/"ret" maps) and naming every error code */
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-error.h"

struct code_entry {
	const char *name;
	const char *text;
};

static const struct code_entry generic_codes[] = {
	[0] = { "EOK", "success" },
	[1] = { "EUNKNOWN", "unknown error on the device" },
	[2] = { "ENOMEM", "the device is out of memory" },
	[3] = { "EINVAL", "the device rejected a request value (or could not decode it)" },
	[4] = { "ETIMEOUT", "an operation on the device timed out" },
	[5] = { "ENOENT", "no such entry on the device" },
	[6] = { "EBADSTATE", "the device's current state forbids this command" },
	[7] = { "EMSGSIZE", "the response would not fit the device's buffer" },
	[8] = { "ENOTSUP", "the device does not support this group or command" },
	[9] = { "ECORRUPT", "the device received a corrupt request" },
	[10] = { "EBUSY", "the device is busy with another command; retry later" },
	[11] = { "EACCESSDENIED", "the device refused the command" },
	[12] = { "UNSUPPORTED_TOO_OLD", "the device only speaks SMP version 2" },
	[13] = { "UNSUPPORTED_TOO_NEW", "the request's SMP version is newer than the device supports" },
};

static const struct code_entry os_codes[] = {
	[2] = { "INVALID_FORMAT", "the info format string has an unsupported character" },
	[3] = { "QUERY_YIELDS_NO_ANSWER", "the bootloader does not recognise the query" },
	[4] = { "RTC_NOT_SET", "the device's real-time clock has not been set" },
	[5] = { "RTC_COMMAND_FAILED", "the device's real-time clock driver failed" },
	[6] = { "QUERY_RESPONSE_VALUE_NOT_VALID", "the query has no valid value" },
	[7] = { "HEAP_STATS_FETCH_FAILED", "the device could not read its memory statistics" },
};

static const struct code_entry image_codes[] = {
	[2] = { "FLASH_CONFIG_QUERY_FAIL", "flash area configuration query failed" },
	[3] = { "NO_IMAGE", "the slot is empty" },
	[4] = { "NO_TLVS", "the image has no TLV area" },
	[5] = { "INVALID_TLV", "the image has a bad TLV" },
	[6] = { "TLV_MULTIPLE_HASHES_FOUND", "the image has more than one SHA-256 TLV" },
	[7] = { "TLV_INVALID_SIZE", "an image TLV has an invalid size" },
	[8] = { "HASH_NOT_FOUND", "no slot holds an image with that hash" },
	[9] = { "NO_FREE_SLOT", "no slot is free for the upload (the secondary is pending or in use): reset or erase it first" },
	[10] = { "FLASH_OPEN_FAILED", "opening the flash area failed" },
	[11] = { "FLASH_READ_FAILED", "reading flash failed" },
	[12] = { "FLASH_WRITE_FAILED", "writing flash failed" },
	[13] = { "FLASH_ERASE_FAILED", "erasing flash failed" },
	[14] = { "INVALID_SLOT", "invalid slot number" },
	[15] = { "NO_FREE_MEMORY", "the device is out of memory" },
	[16] = { "FLASH_CONTEXT_ALREADY_SET", "flash context already set" },
	[17] = { "FLASH_CONTEXT_NOT_SET", "flash context not set" },
	[18] = { "FLASH_AREA_DEVICE_NULL", "flash area has no device" },
	[19] = { "INVALID_PAGE_OFFSET", "invalid page offset" },
	[20] = { "INVALID_OFFSET", "the upload request has no offset" },
	[21] = { "INVALID_LENGTH", "the first upload chunk has no length" },
	[22] = { "INVALID_IMAGE_HEADER", "the first chunk is shorter than the image header" },
	[23] = { "INVALID_IMAGE_HEADER_MAGIC", "the file is not an MCUboot image (bad magic)" },
	[24] = { "INVALID_HASH", "the hash is missing or not 32 bytes" },
	[25] = { "INVALID_FLASH_ADDRESS", "the image was built for another slot address" },
	[26] = { "VERSION_GET_FAILED", "the device could not read its running version" },
	[27] = { "CURRENT_VERSION_IS_NEWER", "the running image is not older than the upload" },
	[28] = { "IMAGE_ALREADY_PENDING", "another image is already pending for the next boot" },
	[29] = { "INVALID_IMAGE_VECTOR_TABLE", "the image has an invalid vector table" },
	[30] = { "INVALID_IMAGE_TOO_LARGE", "the image is larger than the slot" },
	[31] = { "INVALID_IMAGE_DATA_OVERRUN", "the upload data runs past the announced length" },
	[32] = { "IMAGE_CONFIRMATION_DENIED", "confirming an image that is not active is not allowed" },
	[33] = { "IMAGE_SETTING_TEST_TO_ACTIVE_DENIED", "the running image cannot be marked for test" },
	[34] = { "ACTIVE_SLOT_NOT_KNOWN", "the device cannot tell which slot is active" },
};

static const struct code_entry stat_codes[] = {
	[2] = { "INVALID_GROUP", "no statistics group by that name" },
	[3] = { "INVALID_STAT_NAME", "invalid statistic name" },
	[4] = { "INVALID_STAT_SIZE", "invalid statistic size" },
	[5] = { "WALK_ABORTED", "walking the statistics was aborted" },
};

static const struct code_entry settings_codes[] = {
	[2] = { "KEY_TOO_LONG", "the setting name is too long" },
	[3] = { "KEY_NOT_FOUND", "no setting by that name" },
	[4] = { "READ_NOT_SUPPORTED", "the setting cannot be read" },
	[5] = { "ROOT_KEY_NOT_FOUND", "no settings subtree by that name" },
	[6] = { "WRITE_NOT_SUPPORTED", "the setting cannot be written" },
	[7] = { "DELETE_NOT_SUPPORTED", "the setting cannot be deleted" },
	[8] = { "SAVE_NOT_SUPPORTED", "the settings cannot be saved" },
};

static const struct code_entry fs_codes[] = {
	[2] = { "FILE_INVALID_NAME", "invalid file name" },
	[3] = { "FILE_NOT_FOUND", "no such file" },
	[4] = { "FILE_IS_DIRECTORY", "the path is a directory" },
	[5] = { "FILE_OPEN_FAILED", "opening the file failed" },
	[6] = { "FILE_SEEK_FAILED", "seeking in the file failed" },
	[7] = { "FILE_READ_FAILED", "reading the file failed" },
	[8] = { "FILE_TRUNCATE_FAILED", "truncating the file failed" },
	[9] = { "FILE_DELETE_FAILED", "deleting the file failed" },
	[10] = { "FILE_WRITE_FAILED", "writing the file failed" },
	[11] = { "FILE_OFFSET_NOT_VALID", "the upload offset does not match the file size on the device" },
	[12] = { "FILE_OFFSET_LARGER_THAN_FILE", "the offset is beyond the end of the file" },
	[13] = { "CHECKSUM_HASH_NOT_FOUND", "the device does not support that hash or checksum type" },
	[14] = { "MOUNT_POINT_NOT_FOUND", "no file system is mounted there" },
	[15] = { "READ_ONLY_FILESYSTEM", "the file system is read-only" },
	[16] = { "FILE_EMPTY", "the file is empty" },
	[17] = { "FILE_CLOSE_FAILED", "closing the file failed" },
};

static const struct code_entry shell_codes[] = {
	[2] = { "COMMAND_TOO_LONG", "the command line is longer than the device's shell buffer" },
	[3] = { "EMPTY_COMMAND", "the command is empty" },
};

static const struct code_entry enum_codes[] = {
	[2] = { "TOO_MANY_GROUP_ENTRIES", "too many group ids in the request" },
	[3] = { "INSUFFICIENT_HEAP_FOR_ENTRIES", "the device ran out of memory listing groups" },
	[4] = { "INDEX_TOO_LARGE", "the group index is past the last group" },
};

static const struct code_entry zephyr_codes[] = {
	[2] = { "FLASH_OPEN_FAILED", "opening the storage partition failed" },
	[3] = { "FLASH_CONFIG_QUERY_FAIL", "querying the flash device failed" },
	[4] = { "FLASH_ERASE_FAILED", "erasing the storage partition failed" },
};

#define TABLE(t) { t, ELEMENTSOF(t) }
static const struct {
	const struct code_entry *codes;
	size_t n;
} group_tables[] = {
	[SMP_GROUP_OS] = TABLE(os_codes),
	[SMP_GROUP_IMAGE] = TABLE(image_codes),
	[SMP_GROUP_STAT] = TABLE(stat_codes),
	[SMP_GROUP_SETTINGS] = TABLE(settings_codes),
	[SMP_GROUP_FS] = TABLE(fs_codes),
	[SMP_GROUP_SHELL] = TABLE(shell_codes),
	[SMP_GROUP_ENUM] = TABLE(enum_codes),
	[SMP_GROUP_ZEPHYR] = TABLE(zephyr_codes),
};

static const struct code_entry *group_entry(uint16_t group, int64_t rc)
{
	static const struct code_entry ok = { "OK", "success" };
	static const struct code_entry unknown = { "UNKNOWN", "unknown error on the device" };

	if (rc == 0)
		return &ok;
	if (rc == 1)
		return &unknown;
	if (group >= ELEMENTSOF(group_tables) || rc < 0 || (uint64_t)rc >= group_tables[group].n)
		return NULL;
	return group_tables[group].codes[rc].name ? &group_tables[group].codes[rc] : NULL;
}

const char *smp_rc_name(int64_t rc)
{
	if (rc < 0 || (uint64_t)rc >= ELEMENTSOF(generic_codes))
		return NULL;
	return generic_codes[rc].name;
}

const char *smp_rc_describe(int64_t rc)
{
	if (rc >= SMP_RC_EPERUSER)
		return "application-defined error on the device";
	if (rc < 0 || (uint64_t)rc >= ELEMENTSOF(generic_codes))
		return "unrecognised error code from the device";
	return generic_codes[rc].text;
}

const char *smp_group_rc_name(uint16_t group, int64_t rc)
{
	const struct code_entry *e = group_entry(group, rc);

	return e ? e->name : NULL;
}

const char *smp_group_rc_describe(uint16_t group, int64_t rc)
{
	const struct code_entry *e = group_entry(group, rc);

	return e ? e->text : "unrecognised group error code from the device";
}

const char *smp_status_name(const struct smp_status *s)
{
	switch (s->kind) {
	case SMP_STATUS_OK:
		return "OK";
	case SMP_STATUS_RC:
		return smp_rc_name(s->rc) ?: "UNKNOWN_RC";
	case SMP_STATUS_GROUP_ERR:
		return smp_group_rc_name(s->group, s->rc) ?: "UNKNOWN_GROUP_RC";
	}
	return "UNKNOWN";
}

const char *smp_status_describe(const struct smp_status *s)
{
	switch (s->kind) {
	case SMP_STATUS_OK:
		return "success";
	case SMP_STATUS_RC:
		return smp_rc_describe(s->rc);
	case SMP_STATUS_GROUP_ERR:
		return smp_group_rc_describe(s->group, s->rc);
	}
	return "unknown";
}

int smp_status_to_errno(const struct smp_status *s)
{
	if (s->kind == SMP_STATUS_OK)
		return 0;
	if (s->kind == SMP_STATUS_RC) {
		switch (s->rc) {
		case SMP_RC_ENOMEM: return -ENOMEM;
		case SMP_RC_EINVAL: return -EINVAL;
		case SMP_RC_ETIMEOUT: return -ETIMEDOUT;
		case SMP_RC_ENOENT: return -ENOENT;
		case SMP_RC_EBADSTATE: return -EBADFD;
		case SMP_RC_EMSGSIZE: return -EMSGSIZE;
		case SMP_RC_ENOTSUP: return -ENOTSUP;
		case SMP_RC_ECORRUPT: return -EBADMSG;
		case SMP_RC_EBUSY: return -EBUSY;
		case SMP_RC_EACCESSDENIED: return -EACCES;
		case SMP_RC_UNSUPPORTED_TOO_OLD: return -EPROTONOSUPPORT;
		case SMP_RC_UNSUPPORTED_TOO_NEW: return -EPROTONOSUPPORT;
		default: return -EREMOTEIO;
		}
	}
	switch (s->group) {
	case SMP_GROUP_IMAGE:
		if (s->rc == 3 || s->rc == 8)
			return -ENOENT;
		if (s->rc == 9 || s->rc == 28)
			return -EBUSY;
		break;
	case SMP_GROUP_SETTINGS:
		if (s->rc == 3 || s->rc == 5)
			return -ENOENT;
		break;
	case SMP_GROUP_FS:
		if (s->rc == 3 || s->rc == 14)
			return -ENOENT;
		break;
	case SMP_GROUP_STAT:
		if (s->rc == 2)
			return -ENOENT;
		break;
	}
	return -EREMOTEIO;
}

/* Reads {"group": g, "rc": r} from an "err" (or legacy "ret") map. */
static int classify_group_map(const cbor_item_t *m, struct smp_status *ret)
{
	uint64_t group, rc;
	int r;

	r = smp_cbor_get_uint(m, "group", &group);
	if (r < 0)
		return -EBADMSG;
	r = smp_cbor_get_uint(m, "rc", &rc);
	if (r < 0)
		return -EBADMSG;
	if (group > UINT16_MAX || rc > INT64_MAX)
		return -EBADMSG;
	ret->group = (uint16_t)group;
	ret->rc = (int64_t)rc;
	ret->kind = rc == 0 ? SMP_STATUS_OK : SMP_STATUS_GROUP_ERR;
	return 0;
}

int smp_status_classify(const cbor_item_t *map, uint16_t header_group, struct smp_status *ret)
{
	struct smp_status s = { .kind = SMP_STATUS_OK, .group = header_group };
	const cbor_item_t *v;
	int r;

	if (!map || !cbor_isa_map(map)) {
		*ret = s;
		return 0;
	}

	v = smp_cbor_map_get(map, "rsn");
	if (v && cbor_isa_string(v) && cbor_string_is_definite(v)) {
		size_t n = MIN(cbor_string_length(v), sizeof(s.rsn) - 1);

		memcpy(s.rsn, cbor_string_handle(v), n);
		s.rsn[n] = 0;
		/* The hint is shown to people: keep it printable. */
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s.rsn[i] < 0x20 || s.rsn[i] == 0x7f)
				s.rsn[i] = '?';
	}

	v = smp_cbor_map_get(map, "err");
	if (v) {
		if (!cbor_isa_map(v))
			return -EBADMSG;
		r = classify_group_map(v, &s);
		if (r < 0)
			return r;
		*ret = s;
		return 0;
	}
	/* Zephyr 3.4 named the v2 error map "ret"; the shell's integer "ret" is not one. */
	v = smp_cbor_map_get(map, "ret");
	if (v && cbor_isa_map(v)) {
		r = classify_group_map(v, &s);
		if (r < 0)
			return r;
		*ret = s;
		return 0;
	}

	v = smp_cbor_map_get(map, "rc");
	if (v) {
		int64_t rc;

		/* Old shells report the command's exit code as "rc" beside "o". */
		if (header_group == SMP_GROUP_SHELL && smp_cbor_map_get(map, "o")) {
			*ret = s;
			return 0;
		}
		r = smp_cbor_item_int(v, &rc);
		if (r < 0)
			return -EBADMSG;
		if (rc != 0) {
			s.kind = SMP_STATUS_RC;
			s.rc = rc;
		}
	}
	*ret = s;
	return 0;
}
