/* test-smp-error: response classification (ok / rc / err / ret) and code names */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-cbor.h"
#include "smp-error.h"
#include "tests/tap.h"

static int classify_hex(const char *hex, uint16_t group, struct smp_status *ret)
{
	size_t n;
	uint8_t *b = tap_unhex(hex, &n);
	cbor_item_t *it = NULL;
	int r = smp_cbor_load(b, n, 32, &it);

	free(b);
	if (r < 0)
		return r;
	r = smp_status_classify(it, group, ret);
	cbor_decref(&it);
	return r;
}

static void test_forms(void)
{
	struct smp_status s;

	is_int(classify_hex("bfff", 0, &s), 0, "empty map");
	is_int(s.kind, SMP_STATUS_OK, "empty map is success");
	is_int(classify_hex("bf62726300ff", 0, &s), 0, "rc 0");
	is_int(s.kind, SMP_STATUS_OK, "rc 0 is success (legacy servers)");
	/* V19: v2 NO_FREE_SLOT. */
	is_int(classify_hex("bf63657272bf6567726f75700162726309ffff", 1, &s), 0, "err map");
	ok(s.kind == SMP_STATUS_GROUP_ERR && s.group == 1 && s.rc == 9, "image group rc 9");
	is_str(smp_status_name(&s), "NO_FREE_SLOT", "named");
	is_int(smp_status_to_errno(&s), -EBUSY, "no free slot maps to EBUSY");
	/* Recorded: unknown stat group answered with group 63 in err. */
	is_int(classify_hex("bf63657272bf6567726f7570183f62726303ffff", 2, &s), 0, "err naming another group");
	ok(s.kind == SMP_STATUS_GROUP_ERR && s.group == 63 && s.rc == 3, "group from the map, not the header");
	is_str(smp_status_name(&s), "FLASH_CONFIG_QUERY_FAIL", "named by the map's group");
	/* Zephyr 3.4's "ret" map. */
	is_int(classify_hex("a163726574a26567726f7570086272630b", 8, &s), 0, "ret map");
	ok(s.kind == SMP_STATUS_GROUP_ERR && s.group == 8 && s.rc == 11, "legacy ret map");
	/* V20: v1 ENOTSUP, with a reason. */
	is_int(classify_hex("bf62726308ff", 64, &s), 0, "rc 8");
	ok(s.kind == SMP_STATUS_RC && s.rc == 8, "generic rc");
	is_str(smp_status_name(&s), "ENOTSUP", "named ENOTSUP");
	is_int(smp_status_to_errno(&s), -ENOTSUP, "errno ENOTSUP");
	is_int(classify_hex("a2627263036372736e6a6170702072656a656374", 1, &s), 0, "rc with rsn");
	is_str(s.rsn, "app reject", "rsn kept");
	/* A control character in rsn is made printable. */
	is_int(classify_hex("a262726303 6372736e 630a1b41", 1, &s), 0, "rsn with control bytes");
	is_str(s.rsn, "??A", "control bytes replaced");
	/* err with rc 0 is success. */
	is_int(classify_hex("a163657272a2656772 6f7570016272 6300", 1, &s), 0, "err rc 0");
	is_int(s.kind, SMP_STATUS_OK, "err rc 0 is success");
	/* Negative rc (application-defined) is an error. */
	is_int(classify_hex("a16272632a", 0, &s), 0, "negative rc");
	ok(s.kind == SMP_STATUS_RC && s.rc == -11, "negative rc kept");
	/* Application-defined codes. */
	is_int(classify_hex("a1627263190101", 0, &s), 0, "rc 257");
	is_str(smp_status_describe(&s), "application-defined error on the device", "per-user code");
}

static void test_shell(void)
{
	struct smp_status s;

	/* Old shells: {"o": "...", "rc": -2} is the command's exit code. */
	is_int(classify_hex("a2616f62686962726321", SMP_GROUP_SHELL, &s), 0, "shell rc");
	is_int(s.kind, SMP_STATUS_OK, "shell rc beside o is the exit code");
	is_int(classify_hex("a16272630a", SMP_GROUP_SHELL, &s), 0, "shell rc alone");
	ok(s.kind == SMP_STATUS_RC && s.rc == 10, "shell rc without o is an SMP error");
	/* Shell's integer "ret" is not an error map. */
	is_int(classify_hex("bf616f61616372657420ff", SMP_GROUP_SHELL, &s), 0, "shell ret int");
	is_int(s.kind, SMP_STATUS_OK, "integer ret is not an error");
}

static void test_malformed(void)
{
	struct smp_status s = { .rc = 77 };

	is_int(classify_hex("a1636572720a", 1, &s), -EBADMSG, "err not a map");
	is_int(classify_hex("a163657272a1626263 01", 1, &s), -EBADMSG, "err without group");
	is_int(classify_hex("a163657272a16567726f757001", 1, &s), -EBADMSG, "err without rc");
	is_int(classify_hex("a163657272a2656772 6f757020 62726301", 1, &s), -EBADMSG, "negative group");
	is_int(classify_hex("a163657272a2656772 6f75701a00010000 62726301", 1, &s), -EBADMSG,
	       "group beyond 16 bits");
	is_int(classify_hex("a162726361 78", 0, &s), -EBADMSG, "rc as text");
	is_int(classify_hex("a16272631bffffffffffffffff", 0, &s), -EBADMSG, "rc beyond int64");
	is_int(s.rc, 77, "output untouched on failure");
	is_int(smp_status_classify(NULL, 0, &s), 0, "no map is success");
	is_int(s.kind, SMP_STATUS_OK, "no map means ok");
}

static void test_names(void)
{
	static const struct {
		uint16_t group;
		int rc;
		const char *name;
	} v[] = {
		{ 0, 2, "INVALID_FORMAT" }, { 0, 7, "HEAP_STATS_FETCH_FAILED" },
		{ 1, 2, "FLASH_CONFIG_QUERY_FAIL" }, { 1, 24, "INVALID_HASH" },
		{ 1, 34, "ACTIVE_SLOT_NOT_KNOWN" }, { 2, 5, "WALK_ABORTED" },
		{ 3, 8, "SAVE_NOT_SUPPORTED" }, { 8, 11, "FILE_OFFSET_NOT_VALID" },
		{ 8, 17, "FILE_CLOSE_FAILED" }, { 9, 3, "EMPTY_COMMAND" },
		{ 10, 4, "INDEX_TOO_LARGE" }, { 63, 4, "FLASH_ERASE_FAILED" },
		{ 4, 1, "UNKNOWN" }, { 99, 0, "OK" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		is_str(smp_group_rc_name(v[i].group, v[i].rc), v[i].name, "group %u rc %d", v[i].group, v[i].rc);
	ok(smp_group_rc_name(1, 35) == NULL, "image rc 35 unknown");
	ok(smp_group_rc_name(8, -1) == NULL, "negative group rc unknown");
	ok(smp_group_rc_name(4, 2) == NULL, "log group has no table");
	ok(smp_group_rc_describe(1, 99) != NULL, "description never NULL");
	for (int rc = 0; rc <= 13; rc++)
		ok(smp_rc_name(rc) && smp_rc_describe(rc), "generic rc %d named", rc);
	ok(smp_rc_name(14) == NULL, "rc 14 unknown");
	is_str(smp_rc_name(12), "UNSUPPORTED_TOO_OLD", "rc 12");
	for (uint16_t g = 0; g < 64; g++)
		for (int rc = 0; rc < 40; rc++)
			if (smp_group_rc_name(g, rc) && !smp_group_rc_describe(g, rc))
				ok(0, "group %u rc %d has a name but no text", g, rc);
	ok(1, "every named group code has a description");
}

int main(void)
{
	test_forms();
	test_shell();
	test_malformed();
	test_names();
	return tap_done();
}
