/* sim-smp: what a command handler of the simulated SMP server sees: request, response, effects */
#include <string.h>

#include "smp-cbor.h"
#include "smp-error.h"
#include "sim-smp.h"

static const cbor_item_t *sim_req_lookup(const struct sim_ctx *c, const char *key, bool *found)
{
	const cbor_item_t *v = smp_cbor_map_get(c->map, key);

	if (found)
		*found = v != NULL;
	return v;
}

bool sim_req_map(const struct sim_ctx *c)
{
	return c->map != NULL;
}

bool sim_req_u64(const struct sim_ctx *c, const char *key, uint64_t *ret, bool *found)
{
	const cbor_item_t *v;

	if (!c->map)
		return false;
	v = sim_req_lookup(c, key, found);
	if (!v)
		return true;
	return smp_cbor_item_uint(v, ret) == 0;
}

bool sim_req_u32(const struct sim_ctx *c, const char *key, uint32_t *ret, bool *found)
{
	uint64_t v;
	bool f = false;

	if (!sim_req_u64(c, key, &v, &f))
		return false;
	if (found)
		*found = f;
	if (!f)
		return true;
	if (v > UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

bool sim_req_bool(const struct sim_ctx *c, const char *key, bool *ret, bool *found)
{
	const cbor_item_t *v;

	if (!c->map)
		return false;
	v = sim_req_lookup(c, key, found);
	if (!v)
		return true;
	/* Zephyr's bool decoder refuses anything else; a float must not reach
	 * libcbor's cbor_is_bool(), which asserts on it. */
	return smp_cbor_item_bool(v, ret) == 0;
}

static bool sim_req_string(const struct sim_ctx *c, const char *key, bool text, const uint8_t **ret,
			   size_t *ret_len, bool *found)
{
	const cbor_item_t *v;

	if (!c->map)
		return false;
	v = sim_req_lookup(c, key, found);
	if (!v)
		return true;
	if (text ? !cbor_isa_string(v) : !cbor_isa_bytestring(v))
		return false;
	/* smp_cbor_load joined indefinite strings, so the handle is the whole value. */
	if (text ? !cbor_string_is_definite(v) : !cbor_bytestring_is_definite(v))
		return false;
	*ret = text ? cbor_string_handle(v) : cbor_bytestring_handle(v);
	*ret_len = text ? cbor_string_length(v) : cbor_bytestring_length(v);
	if (!*ret)
		*ret = (const uint8_t *)"";
	return true;
}

bool sim_req_text(const struct sim_ctx *c, const char *key, const char **ret, size_t *ret_len,
		  bool *found)
{
	return sim_req_string(c, key, true, (const uint8_t **)ret, ret_len, found);
}

bool sim_req_bytes(const struct sim_ctx *c, const char *key, const uint8_t **ret, size_t *ret_len,
		   bool *found)
{
	return sim_req_string(c, key, false, ret, ret_len, found);
}

void sim_rsp_err(struct sim_ctx *c, uint16_t group, uint16_t rc)
{
	if (rc == 0)
		return;
	c->err_group = group;
	c->err_rc = rc;
	smp_cbor_put_text(&c->rsp, "err");
	smp_cbor_put_map_indef(&c->rsp);
	smp_cbor_put_text(&c->rsp, "group");
	smp_cbor_put_uint(&c->rsp, group);
	smp_cbor_put_text(&c->rsp, "rc");
	smp_cbor_put_uint(&c->rsp, rc);
	smp_cbor_put_break(&c->rsp);
}

int sim_translate_error(uint16_t group, uint16_t rc)
{
	switch (group) {
	case SMP_GROUP_OS:
		switch (rc) {
		case SIM_OS_ERR_INVALID_FORMAT:
			return SMP_RC_EINVAL;
		case SIM_OS_ERR_QUERY_YIELDS_NO_ANSWER:
		case SIM_OS_ERR_RTC_NOT_SET:
			return SMP_RC_ENOENT;
		}
		return SMP_RC_EUNKNOWN;
	case SMP_GROUP_IMAGE:
		switch (rc) {
		case SIM_IMG_ERR_NO_IMAGE:
		case SIM_IMG_ERR_NO_TLVS:
			return SMP_RC_ENOENT;
		case SIM_IMG_ERR_NO_FREE_SLOT:
		case SIM_IMG_ERR_CURRENT_VERSION_IS_NEWER:
		case SIM_IMG_ERR_IMAGE_ALREADY_PENDING:
			return SMP_RC_EBADSTATE;
		case 15: /* NO_FREE_MEMORY */
			return SMP_RC_ENOMEM;
		case SIM_IMG_ERR_INVALID_SLOT:
		case 19: /* INVALID_PAGE_OFFSET */
		case SIM_IMG_ERR_INVALID_OFFSET:
		case SIM_IMG_ERR_INVALID_LENGTH:
		case SIM_IMG_ERR_INVALID_IMAGE_HEADER:
		case SIM_IMG_ERR_INVALID_HASH:
		case 25: /* INVALID_FLASH_ADDRESS */
			return SMP_RC_EINVAL;
		}
		return SMP_RC_EUNKNOWN;
	case SMP_GROUP_SETTINGS:
		switch (rc) {
		case SIM_SETTINGS_ERR_KEY_TOO_LONG:
			return SMP_RC_EINVAL;
		case SIM_SETTINGS_ERR_KEY_NOT_FOUND:
		case SIM_SETTINGS_ERR_READ_NOT_SUPPORTED:
			return SMP_RC_ENOENT;
		}
		return SMP_RC_EUNKNOWN;
	case SMP_GROUP_FS:
		switch (rc) {
		case SIM_FS_ERR_FILE_INVALID_NAME:
		case SIM_FS_ERR_CHECKSUM_HASH_NOT_FOUND:
			return SMP_RC_EINVAL;
		case SIM_FS_ERR_FILE_NOT_FOUND:
		case SIM_FS_ERR_MOUNT_POINT_NOT_FOUND:
			return SMP_RC_ENOENT;
		}
		return SMP_RC_EUNKNOWN;
	case SMP_GROUP_SHELL:
		switch (rc) {
		case SIM_SHELL_ERR_COMMAND_TOO_LONG:
		case SIM_SHELL_ERR_EMPTY_COMMAND:
			return SMP_RC_EINVAL;
		}
		return SMP_RC_EUNKNOWN;
	case SMP_GROUP_ENUM:
		return rc == SIM_ENUM_ERR_TOO_MANY_GROUP_ENTRIES ? SMP_RC_EINVAL : SMP_RC_EUNKNOWN;
	case SMP_GROUP_ZEPHYR:
		switch (rc) {
		case SIM_ZB_ERR_FLASH_OPEN_FAILED:
			return SMP_RC_ENOENT;
		case SIM_ZB_ERR_FLASH_CONFIG_QUERY_FAIL:
		case SIM_ZB_ERR_FLASH_ERASE_FAILED:
			/* Zephyr's basic group really translates these to success. */
			return SMP_RC_OK;
		}
		return SMP_RC_EUNKNOWN;
	}
	/* Statistics and user groups have no translator. */
	return SMP_RC_EUNKNOWN;
}
