/* fuzz-response: response decode, the typed parser of every group, status names, JSON of the payload */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-error.h"
#include "smp-groups.h"
#include "smp-header.h"
#include "smp-json.h"
#include "smp-response.h"
#include "tests/fuzz/fuzz.h"

static void check_names(const struct smp_response *rsp)
{
	const struct smp_status *s = &rsp->status;
	const char *name;

	FUZZ_CHECK(memchr(s->rsn, 0, sizeof(s->rsn)));
	FUZZ_CHECK(s->kind != SMP_STATUS_OK || s->rc == 0);
	FUZZ_CHECK(smp_status_to_errno(s) <= 0);
	FUZZ_CHECK(s->kind != SMP_STATUS_OK || smp_status_to_errno(s) == 0);
	name = smp_status_name(s);
	FUZZ_CHECK(!name || strlen(name) > 0);
	FUZZ_CHECK(strlen(smp_status_describe(s)) > 0);
	FUZZ_CHECK(strlen(smp_rc_describe(s->rc)) > 0);
	FUZZ_CHECK(strlen(smp_group_rc_describe(s->group, s->rc)) > 0);
	FUZZ_CHECK(strlen(smp_group_rc_describe(rsp->hdr.group, s->rc)) > 0);
	name = smp_rc_name(s->rc);
	FUZZ_CHECK(!name || strlen(name) > 0);
	name = smp_group_rc_name(s->group, s->rc);
	FUZZ_CHECK(!name || strlen(name) > 0);
	FUZZ_CHECK(smp_op_to_string(rsp->hdr.op)); /* decode accepts responses only */
	name = smp_group_to_string(rsp->hdr.group);
	FUZZ_CHECK(!name || strlen(name) > 0);
	name = smp_command_to_string(rsp->hdr.group, rsp->hdr.id, rsp->hdr.op);
	FUZZ_CHECK(!name || strlen(name) > 0);
}

static void decode(const uint8_t *data, size_t size)
{
	_cleanup_(smp_response_freep) struct smp_response *rsp = NULL;
	json_t *j = NULL;
	int r;

	if (smp_response_decode(data, size, &rsp) < 0)
		return;

	/* One target covers every group: the header picks the parser. */
	r = smp_groups_parse_any(rsp);
	FUZZ_CHECK(r == 0 || r == -EREMOTEIO || r == -EBADMSG || r == -ENOTSUP || r == -ENOMEM);
	r = smp_groups_parse_empty(rsp);
	FUZZ_CHECK(r == 0 || r == -EREMOTEIO || r == -EBADMSG);
	check_names(rsp);

	/* Whatever smp_cbor_load accepted has a JSON form (doc/cbor-json.md). */
	if (rsp->root) {
		r = smp_json_from_cbor(rsp->root, &j);
		FUZZ_CHECK(r == 0 || r == -ENOMEM);
		json_decref(j);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ uint8_t *fixed = NULL;

	decode(data, size);

	/* Most mutations break the header's length field, and decoding stops
	 * there; try the same bytes with the length made right, so that the CBOR
	 * and group parsers see every mutation too. */
	if (size < SMP_HEADER_SIZE || size - SMP_HEADER_SIZE > UINT16_MAX ||
	    ((size_t)data[2] << 8 | data[3]) == size - SMP_HEADER_SIZE)
		return 0;
	fixed = malloc(size);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	fixed[2] = (uint8_t)((size - SMP_HEADER_SIZE) >> 8);
	fixed[3] = (uint8_t)(size - SMP_HEADER_SIZE);
	decode(fixed, size);
	return 0;
}
