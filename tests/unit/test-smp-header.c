/* test-smp-header: header packing against the reference vectors */
#include <errno.h>
#include <stdlib.h>

#include "smp-header.h"
#include "tests/tap.h"

static void test_vectors(void)
{
	static const struct {
		const char *hex;
		struct smp_header h;
	} v[] = {
		/* V1: echo request v2 seq 1; V4 params response; V20 v1 error from user group 64 */
		{ "0a000009 00000100", { .version = 1, .op = 2, .len = 9, .group = 0, .seq = 1, .id = 0 } },
		{ "09000019 00000206", { .version = 1, .op = 1, .len = 0x19, .group = 0, .seq = 2, .id = 6 } },
		{ "01000006 00402000", { .version = 0, .op = 1, .len = 6, .group = 64, .seq = 0x20, .id = 0 } },
		{ "0b0000f4 00011000", { .version = 1, .op = 3, .len = 0xf4, .group = 1, .seq = 0x10, .id = 0 } },
		{ "0a000001 003f5200", { .version = 1, .op = 2, .len = 1, .group = 63, .seq = 0x52, .id = 0 } },
		{ "0800ff00 fffe ff 07", { .version = 1, .op = 0, .len = 0xff00, .group = 0xfffe, .seq = 0xff, .id = 7 } },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t n;
		uint8_t *want = tap_unhex(v[i].hex, &n);
		uint8_t out[SMP_HEADER_SIZE];
		struct smp_header h;

		smp_header_encode(&v[i].h, out);
		is_mem(out, sizeof(out), want, n, "encode vector %zu", i);
		is_int(smp_header_decode(want, n, &h), 0, "decode vector %zu", i);
		ok(h.version == v[i].h.version && h.op == v[i].h.op && h.len == v[i].h.len &&
			   h.group == v[i].h.group && h.seq == v[i].h.seq && h.id == v[i].h.id,
		   "decoded fields of vector %zu", i);
		free(want);
	}
}

static void test_reserved_bits(void)
{
	/* Reserved bits set, version 3 (reserved), op 7 (invalid): decoded as is. */
	const uint8_t raw[8] = { 0xff, 0x5a, 0, 0, 0, 1, 2, 3 };
	struct smp_header h;
	uint8_t out[8];

	is_int(smp_header_decode(raw, sizeof(raw), &h), 0, "reserved bits accepted");
	is_int(h.version, 3, "version bits read");
	is_int(h.op, 7, "op bits read");
	is_int(h.flags, 0x5a, "flags read");
	smp_header_encode(&h, out);
	is_int(out[0], 0x1f, "reserved bits sent as zero");
}

static void test_short(void)
{
	const uint8_t raw[8] = { 0 };
	struct smp_header h = { .seq = 42 };

	for (size_t n = 0; n < 8; n++)
		is_int(smp_header_decode(raw, n, &h), -EBADMSG, "%zu bytes is too short", n);
	is_int(h.seq, 42, "output untouched on failure");
	is_int(smp_header_decode(NULL, 8, &h), -EBADMSG, "NULL buffer refused");
}

static void test_names(void)
{
	is_str(smp_op_to_string(SMP_OP_WRITE_RSP), "write-rsp", "op name");
	ok(smp_op_to_string(5) == NULL, "invalid op has no name");
	is_str(smp_group_to_string(SMP_GROUP_ZEPHYR), "zephyr", "group 63 name");
	is_str(smp_group_to_string(64), "user", "user group");
	is_str(smp_group_to_string(1000), "user", "large user group");
	ok(smp_group_to_string(40) == NULL, "unassigned group has no name");
	is_str(smp_command_to_string(SMP_GROUP_FS, SMP_FS_FILE, SMP_OP_WRITE), "upload", "fs upload");
	is_str(smp_command_to_string(SMP_GROUP_FS, SMP_FS_FILE, SMP_OP_READ), "download", "fs download");
	is_str(smp_command_to_string(SMP_GROUP_SETTINGS, 3, SMP_OP_WRITE_RSP), "save", "settings save");
	is_str(smp_command_to_string(SMP_GROUP_OS, SMP_OS_BOOTLOADER, 0), "bootloader", "os bootloader");
	ok(smp_command_to_string(SMP_GROUP_OS, 9, 0) == NULL, "unknown os command");
	ok(smp_command_to_string(SMP_GROUP_IMAGE, 2, 0) == NULL, "reserved image command");
}

int main(void)
{
	test_vectors();
	test_reserved_bits();
	test_short();
	test_names();
	return tap_done();
}
