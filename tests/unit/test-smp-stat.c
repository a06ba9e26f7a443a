/* test-smp-stat: statistics group builders and parsers against smp-protocol.md §15 and Zephyr 4.1 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-groups.h"
#include "smp-stat.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

#define READ SMP_OP_READ_RSP

static void test_requests(void)
{
	struct smp_request *r = NULL;
	int err;

	err = smp_stat_show_request("smp_svr_stats", &r);
	gt_check_request(err, r, 1, 0x51,
			 "08000014 00025100 | a1646e616d656d736d705f7376725f7374617473",
			 "V30 stat show");
	err = smp_stat_list_request(&r);
	gt_check_request(err, r, 1, 0x53, "08000001 00025301 | a0", "stat list");
	is_int(smp_stat_show_request(NULL, &r), -EINVAL, "show without a name");
	is_int(smp_stat_show_request("", &r), -EINVAL, "show with an empty name");
}

static void test_recorded(const struct gt_recording *rec)
{
	struct smp_request *r = NULL;
	struct smp_response *rsp;
	struct smp_stat_list *l = NULL;
	struct smp_stat_group *g = NULL;
	const struct gt_pair *p;
	int err;

	err = smp_stat_list_request(&r);
	gt_check_recorded_request(rec, "stat list", err, r);
	err = smp_stat_show_request("smp_svr_stats", &r);
	gt_check_recorded_request(rec, "stat read", err, r);
	err = smp_stat_show_request("nope", &r);
	gt_check_recorded_request(rec, "stat read unknown", err, r);

	if ((rsp = gt_recording_response(rec, "stat list"))) {
		gt_check_status(rsp, SMP_STATUS_OK, 0, 0, "recorded stat list");
		is_int(smp_stat_list_parse(rsp, &l), 0, "%s stat list parses", rec->file);
		ok(l && l->n_names == 3 && strcmp(l->names[0], "flash_sim_stats") == 0 &&
			   strcmp(l->names[1], "flash_sim_thresholds") == 0 &&
			   strcmp(l->names[2], "smp_svr_stats") == 0,
		   "%s stat list names", rec->file);
		l = smp_stat_list_free(l);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "stat read"))) {
		is_int(smp_stat_show_parse(rsp, &g), 0, "%s stat read parses", rec->file);
		is_str(g ? g->name : NULL, "smp_svr_stats", "%s group name", rec->file);
		/* smp_svr on native_sim/64 reports a padding word as "s1": it is kept. */
		ok(g && g->n_fields == 2 && strcmp(g->fields[0].name, "ticks") == 0 &&
			   g->fields[0].value == 0 && strcmp(g->fields[1].name, "s1") == 0 &&
			   g->fields[1].value == 0,
		   "%s fields ticks = 0 and the s1 padding entry", rec->file);
		g = smp_stat_group_free(g);
		smp_response_free(rsp);
	}
	p = gt_recording_pair(rec, "stat read unknown");
	if (rec->version == 1) {
		rsp = gt_recording_response(rec, "stat read unknown");
		if (rsp) {
			/* Zephyr 4.1 names group 63 in the error, not the stat group. */
			gt_check_status(rsp, SMP_STATUS_GROUP_ERR, SMP_GROUP_ZEPHYR, 3,
					"v2 unknown stat group: err group 63 rc 3");
			is_int(smp_stat_show_parse(rsp, &g), -EREMOTEIO, "v2 unknown group: error");
			ok(!g, "v2 unknown group: no result");
			smp_response_free(rsp);
		}
	} else {
		/* The v1 recording holds only a header that announces 41 bytes. */
		rsp = NULL;
		is_int(smp_response_decode(p->rsp, p->rsp_len, &rsp), -EBADMSG,
		       "v1 unknown group: the recorded header-only answer is refused");
		ok(!rsp, "v1 unknown group: no response");
	}
}

static void test_shapes(void)
{
	struct smp_stat_group *g = NULL;
	struct smp_stat_list *l = NULL;
	struct smp_response *rsp;

	/* Older servers: {"rc": 0, "name": "g", "fields": {"a": 1, "b": 0xffffffff}} */
	rsp = gt_response("0900001e 00020000 | a362726300646e616d656167666669656c6473a2616101616"
			  "21affffffff",
			  "legacy stat show");
	if (rsp) {
		is_int(smp_stat_show_parse(rsp, &g), 0, "legacy show parses");
		ok(g && strcmp(g->name, "g") == 0 && g->n_fields == 2 && g->fields[0].value == 1 &&
			   g->fields[1].value == 0xffffffff,
		   "legacy show fields");
		g = smp_stat_group_free(g);
		smp_response_free(rsp);
	}
	rsp = gt_response("0900000e 00020001 | bf69737461745f6c6973749fffff", "empty list");
	if (rsp) {
		is_int(smp_stat_list_parse(rsp, &l), 0, "empty stat list parses");
		ok(l && l->n_names == 0, "no names");
		l = smp_stat_list_free(l);
		smp_response_free(rsp);
	}
	gt_check_payload("show with no fields", 2, SMP_STAT_SHOW, READ,
			 "bf646e616d656167666669656c6473a0ff", 0);
	gt_check_payload("list entry that is not text", 2, SMP_STAT_LIST, READ,
			 "bf69737461745f6c6973749f6161 01ffff", -EBADMSG);
	gt_check_payload("list entry with a NUL", 2, SMP_STAT_LIST, READ,
			 "bf69737461745f6c6973749f626100ffff", -EBADMSG);
	gt_check_payload("field name that is not text", 2, SMP_STAT_SHOW, READ,
			 "bf646e616d656167666669656c6473bf0101ffff", -EBADMSG);
	gt_check_payload("field value that is negative", 2, SMP_STAT_SHOW, READ,
			 "bf646e616d656167666669656c6473bf616120ffff", -EBADMSG);
	gt_check_payload("stat has no command 2", 2, 2, READ, "bfff", -ENOTSUP);
	gt_check_payload("stat show has no WRITE", 2, SMP_STAT_SHOW, SMP_OP_WRITE_RSP, "bfff",
			 -ENOTSUP);
}

static void test_malformed(void)
{
	static const struct gt_field show[] = {
		{ "name", "666d7973746174", "01", true },
		{ "fields", "a0", "80", true },
	};
	static const struct gt_field fields[] = {
		{ "ticks", "1a00010000", "6161", false },
		{ "s1", "00", "20", false },
		{ "big", "1bffffffffffffffff", "f5", false },
	};
	static const struct gt_field list[] = { { "stat_list", "80", "a0", true } };

	gt_check_fields("show", 2, SMP_STAT_SHOW, READ, "", show, 2, "");
	gt_check_fields("show fields", 2, SMP_STAT_SHOW, READ, "bf646e616d656167666669656c6473",
			fields, 3, "ff");
	gt_check_fields("list", 2, SMP_STAT_LIST, READ, "", list, 1, "");
	gt_check_hostile("show", 2, SMP_STAT_SHOW, READ, "646e616d656167", "fields");
	gt_check_hostile("show name", 2, SMP_STAT_SHOW, READ, "666669656c6473a0", "name");
	gt_check_hostile("list", 2, SMP_STAT_LIST, READ, "", "stat_list");
}

int main(void)
{
	struct gt_recording *v2 = gt_recording_load("udp-v2.json");
	struct gt_recording *v1 = gt_recording_load("udp-v1.json");

	test_requests();
	test_recorded(v2);
	test_recorded(v1);
	test_shapes();
	test_malformed();
	gt_check_recordings_robust(SMP_GROUP_STAT);

	gt_recording_free(v2);
	gt_recording_free(v1);
	return tap_done();
}
