/* test-smp-settings: settings group builders and parsers against smp-protocol.md §15 and Zephyr 4.1 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-groups.h"
#include "smp-settings.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

#define READ SMP_OP_READ_RSP
#define WRITE SMP_OP_WRITE_RSP

static void test_requests(void)
{
	static const uint8_t val[] = { 0x2b, 0, 0, 0 };
	struct smp_request *r = NULL;
	int err;

	err = smp_settings_read_request("app/cnt", 0, &r);
	gt_check_request(err, r, 1, 0x31, "0800000e 00033100 | a1646e616d65676170702f636e74",
			 "V23 settings read");
	err = smp_settings_write_request("app/cnt", val, sizeof(val), &r);
	gt_check_request(err, r, 1, 0x32,
			 "0a000017 00033200 | a2646e616d65676170702f636e746376616c442b000000",
			 "V25 settings write");

	/* Our own, encoded by hand. */
	err = smp_settings_read_request("app/cnt", 64, &r);
	gt_check_request(err, r, 1, 0x33,
			 "08000019 00033300 | a2646e616d65676170702f636e74686d61785f73697a651840",
			 "read with max_size");
	err = smp_settings_delete_request("app/cnt", &r);
	gt_check_request(err, r, 1, 0x34, "0a00000e 00033401 | a1646e616d65676170702f636e74",
			 "delete");
	err = smp_settings_commit_request(&r);
	gt_check_request(err, r, 1, 0x35, "0a000001 00033502 | a0", "commit");
	err = smp_settings_load_request(&r);
	gt_check_request(err, r, 1, 0x36, "08000001 00033603 | a0", "load");
	err = smp_settings_save_request(NULL, &r);
	gt_check_request(err, r, 1, 0x37, "0a000001 00033703 | a0", "save all");
	err = smp_settings_save_request("app", &r);
	gt_check_request(err, r, 1, 0x38, "0a00000a 00033803 | a1646e616d6563617070", "save subtree");
	err = smp_settings_write_request("app/empty", NULL, 0, &r);
	gt_check_request(err, r, 1, 0x39,
			 "0a000015 00033900 | a2646e616d65696170702f656d7074796376616c40",
			 "write an empty value");

	is_int(smp_settings_read_request(NULL, 0, &r), -EINVAL, "read without name");
	is_int(smp_settings_read_request("", 0, &r), -EINVAL, "read with empty name");
	is_int(smp_settings_write_request("a", NULL, 3, &r), -EINVAL, "write NULL val with length");
	is_int(smp_settings_delete_request("", &r), -EINVAL, "delete with empty name");
	is_int(smp_settings_save_request("", &r), -EINVAL, "save with empty name");
}

static void test_recorded(const struct gt_recording *rec)
{
	static const uint8_t val[] = { 1, 2, 3 };
	static const char *const empty[] = { "settings write", "settings delete",
					     "settings commit", "settings save" };
	struct smp_request *r = NULL;
	struct smp_response *rsp;
	struct smp_settings_value *v = NULL;
	int err;

	err = smp_settings_write_request("peer/val", val, sizeof(val), &r);
	gt_check_recorded_request(rec, "settings write", err, r);
	err = smp_settings_read_request("peer/val", 0, &r);
	gt_check_recorded_request(rec, "settings read", err, r);
	err = smp_settings_read_request("peer/missing", 0, &r);
	gt_check_recorded_request(rec, "settings read missing", err, r);
	err = smp_settings_delete_request("peer/val", &r);
	gt_check_recorded_request(rec, "settings delete", err, r);
	err = smp_settings_commit_request(&r);
	gt_check_recorded_request(rec, "settings commit", err, r);
	err = smp_settings_save_request(NULL, &r);
	gt_check_recorded_request(rec, "settings save", err, r);

	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++)
		if ((rsp = gt_recording_response(rec, empty[i]))) {
			gt_check_status(rsp, SMP_STATUS_OK, 0, 0, empty[i]);
			is_int(smp_groups_parse_any(rsp), 0, "%s %s: empty success", rec->file,
			       empty[i]);
			smp_response_free(rsp);
		}
	if ((rsp = gt_recording_response(rec, "settings read"))) {
		is_int(smp_settings_read_parse(rsp, &v), 0, "%s read parses", rec->file);
		ok(v && v->len == 3 && memcmp(v->val, val, 3) == 0 && !v->has_max_size,
		   "%s value 01 02 03", rec->file);
		v = smp_settings_value_free(v);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "settings read missing"))) {
		if (rec->version == 1)
			gt_check_status(rsp, SMP_STATUS_GROUP_ERR, SMP_GROUP_SETTINGS, 3,
					"v2 missing key: KEY_NOT_FOUND");
		else
			gt_check_status(rsp, SMP_STATUS_RC, 0, SMP_RC_ENOENT, "v1 missing key: ENOENT");
		is_int(smp_settings_read_parse(rsp, &v), -EREMOTEIO, "%s missing key: error",
		       rec->file);
		smp_response_free(rsp);
	}
}

static void test_responses(void)
{
	struct smp_settings_value *v = NULL;
	struct smp_response *rsp;

	rsp = gt_response("0900000b 00033100 | bf6376616c442a000000ff", "V24");
	if (rsp) {
		is_int(smp_settings_read_parse(rsp, &v), 0, "V24 parses");
		ok(v && v->len == 4 && memcmp(v->val, "\x2a\0\0\0", 4) == 0, "V24 val 2a000000");
		v = smp_settings_value_free(v);
		smp_response_free(rsp);
	}
	rsp = gt_response("09000010 00030000 | a26376616c40686d61785f73697a6510", "capped");
	if (rsp) {
		is_int(smp_settings_read_parse(rsp, &v), 0, "empty value with max_size parses");
		ok(v && v->len == 0 && v->val && v->has_max_size && v->max_size == 16,
		   "empty value, device limit 16");
		v = smp_settings_value_free(v);
		smp_response_free(rsp);
	}
	gt_check_payload("settings delete has no READ", 3, SMP_SETTINGS_DELETE, READ, "bfff",
			 -ENOTSUP);
	gt_check_payload("load answer", 3, SMP_SETTINGS_LOAD_SAVE, READ, "bfff", 0);
	gt_check_payload("save answer with legacy rc 0", 3, SMP_SETTINGS_LOAD_SAVE, WRITE,
			 "bf62726300ff", 0);
	gt_check_payload("max_size beyond 32 bits", 3, SMP_SETTINGS_VALUE, READ,
			 "bf6376616c40686d61785f73697a651b0000000100000000ff", -EBADMSG);
	gt_check_payload("settings command 4 has no parser", 3, 4, READ, "bfff", -ENOTSUP);
}

static void test_malformed(void)
{
	static const struct gt_field read[] = {
		{ "val", "43010203", "63010203", true },
		{ "max_size", "1820", "20", false },
	};

	gt_check_fields("read", 3, SMP_SETTINGS_VALUE, READ, "", read, 2, "");
	gt_check_hostile("read", 3, SMP_SETTINGS_VALUE, READ, "", "val");
	gt_check_hostile("read max_size", 3, SMP_SETTINGS_VALUE, READ, "6376616c40", "max_size");
}

int main(void)
{
	struct gt_recording *v2 = gt_recording_load("udp-v2.json");
	struct gt_recording *v1 = gt_recording_load("udp-v1.json");

	test_requests();
	test_recorded(v2);
	test_recorded(v1);
	test_responses();
	test_malformed();
	gt_check_recordings_robust(SMP_GROUP_SETTINGS);

	gt_recording_free(v2);
	gt_recording_free(v1);
	return tap_done();
}
