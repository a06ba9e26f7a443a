/* test-smp-os: OS group builders and parsers against smp-protocol.md §15 and Zephyr 4.1 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-groups.h"
#include "smp-os.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

#define READ SMP_OP_READ_RSP
#define WRITE SMP_OP_WRITE_RSP

static void test_request_vectors(void)
{
	struct smp_request *r = NULL;
	int err;

	err = smp_os_echo_request("hello", &r);
	gt_check_request(err, r, 1, 0x01, "0a000009 00000100 | a161646568656c6c6f", "V1 echo");
	err = smp_os_params_request(&r);
	gt_check_request(err, r, 1, 0x02, "08000001 00000206 | a0", "V3 params");
	err = smp_os_info_request("sv", &r);
	gt_check_request(err, r, 1, 0x03, "0800000b 00000307 | a166666f726d6174627376", "V5 info sv");
	err = smp_os_bootloader_request(SMP_OS_BOOTLOADER_QUERY_MODE, &r);
	gt_check_request(err, r, 1, 0x04, "0800000c 00000408 | a1657175657279646d6f6465",
			 "V7 bootloader mode");
	err = smp_os_reset_request(false, -1, &r);
	gt_check_request(err, r, 1, 0x05, "0a000001 00000505 | a0", "V9 reset");
	err = smp_os_reset_request(true, -1, &r);
	gt_check_request(err, r, 1, 0x06, "0a000008 00000605 | a165666f726365f5", "V10 reset force");

	/* Our own, encoded by hand. */
	err = smp_os_reset_request(true, SMP_OS_RESET_BOOT_MODE_BOOTLOADER, &r);
	gt_check_request(err, r, 1, 0x07,
			 "0a000013 00000705 | a265666f726365f569626f6f745f6d6f646501",
			 "reset force + boot_mode 1");
	err = smp_os_reset_request(false, SMP_OS_RESET_BOOT_MODE_NORMAL, &r);
	gt_check_request(err, r, 1, 0x08, "0a00000c 00000805 | a169626f6f745f6d6f646500",
			 "reset boot_mode 0 without force");
	err = smp_os_console_echo_request(true, &r);
	gt_check_request(err, r, 1, 0x09, "0a000007 00000901 | a1646563686f01", "console echo on");
	err = smp_os_console_echo_request(false, &r);
	gt_check_request(err, r, 1, 0x09, "0a000007 00000901 | a1646563686f00", "console echo off");
	err = smp_os_bootloader_request(SMP_OS_BOOTLOADER_QUERY_ACTIVE_B0_SLOT, &r);
	gt_check_request(err, r, 1, 0x0a,
			 "08000016 00000a08 | a16571756572796e6163746976655f62305f736c6f74",
			 "bootloader active_b0_slot");
	err = smp_os_info_request(NULL, &r);
	gt_check_request(err, r, 1, 0x0b, "08000001 00000b07 | a0", "info without format");

	is_int(smp_os_echo_request(NULL, &r), -EINVAL, "echo NULL text");
	is_int(smp_os_datetime_set_request(NULL, &r), -EINVAL, "datetime set NULL");
	is_int(smp_os_reset_request(false, 256, &r), -EINVAL, "boot_mode 256");
	is_int(smp_os_reset_request(false, -2, &r), -EINVAL, "boot_mode -2");
}

static void test_recorded_requests(const struct gt_recording *rec)
{
	struct smp_request *r = NULL;
	int err;

	err = smp_os_echo_request("hello", &r);
	gt_check_recorded_request(rec, "os echo", err, r);
	err = smp_os_taskstat_request(&r);
	gt_check_recorded_request(rec, "os taskstat", err, r);
	err = smp_os_mpstat_request(&r);
	gt_check_recorded_request(rec, "os mpstat (unsupported here)", err, r);
	err = smp_os_datetime_set_request("2026-11-21T10:00:00", &r);
	gt_check_recorded_request(rec, "os datetime set", err, r);
	err = smp_os_datetime_get_request(&r);
	gt_check_recorded_request(rec, "os datetime get", err, r);
	err = smp_os_params_request(&r);
	gt_check_recorded_request(rec, "os params", err, r);
	err = smp_os_info_request("a", &r);
	gt_check_recorded_request(rec, "os info all", err, r);
	err = smp_os_info_request("Z", &r);
	gt_check_recorded_request(rec, "os info bad format", err, r);
	err = smp_os_bootloader_request(NULL, &r);
	gt_check_recorded_request(rec, "os bootloader (no mcuboot here)", err, r);
}

static void test_response_vectors(void)
{
	struct smp_response *rsp;
	struct smp_os_params params;
	struct smp_os_bootloader_info *bl = NULL;
	char *s = NULL;

	rsp = gt_response("0b00000a 00000100 | bf61726568656c6c6fff", "V2");
	if (rsp) {
		is_int(smp_os_echo_parse(rsp, &s), 0, "V2 echo parses");
		is_str(s, "hello", "V2 echo text");
		free(s);
		s = NULL;
		smp_response_free(rsp);
	}
	rsp = gt_response("09000019 00000206 | bf686275665f73697a65190180696275665f636f756e7404ff",
			  "V4");
	if (rsp) {
		is_int(smp_os_params_parse(rsp, &params), 0, "V4 params parse");
		is_int(params.buf_size, 384, "V4 buf_size");
		is_int(params.buf_count, 4, "V4 buf_count");
		smp_response_free(rsp);
	}
	rsp = gt_response("09000016 00000307 | bf666f75747075746c5a657068797220332e372e30ff", "V6");
	if (rsp) {
		is_int(smp_os_info_parse(rsp, &s), 0, "V6 info parses");
		is_str(s, "Zephyr 3.7.0", "V6 output");
		free(s);
		s = NULL;
		smp_response_free(rsp);
	}
	rsp = gt_response("09000008 00000408 | bf646d6f646503ff", "V8");
	if (rsp) {
		is_int(smp_os_bootloader_parse(rsp, &bl), 0, "V8 bootloader parses");
		ok(bl && bl->has_mode && bl->mode == SMP_OS_BOOT_MODE_SWAP_MOVE, "V8 mode 3");
		ok(bl && !bl->bootloader && !bl->has_no_downgrade && !bl->has_active,
		   "V8 has nothing else");
		bl = smp_os_bootloader_info_free(bl);
		smp_response_free(rsp);
	}
	rsp = gt_response("0b000002 00000505 | bfff", "V11");
	if (rsp) {
		is_int(smp_groups_parse_empty(rsp), 0, "V11 reset response is an empty success");
		is_int(smp_groups_parse_any(rsp), 0, "V11 through the dispatcher");
		smp_response_free(rsp);
	}
}

static void check_taskstat(const struct gt_recording *rec)
{
	static const struct {
		const char *name;
		int prio;
		unsigned tid;
		unsigned state;
	} want[] = {
		{ "mcumgr smp", 3, 0, 0x80 },     { "smp_udp4", 0, 1, 2 },
		{ "conn_mgr_monitor", -1, 2, 2 }, { "rx_q[0]", -1, 3, 2 },
		{ "net_mgmt", -1, 4, 2 },         { "shell_uart", 14, 5, 2 },
		{ "sysworkq", -1, 6, 2 },         { "shell_dummy", 14, 7, 2 },
		{ "idle", 15, 8, 0 },             { "main", 0, 9, 4 },
	};
	struct smp_response *rsp = gt_recording_response(rec, "os taskstat");
	struct smp_os_taskstat *t = NULL;
	bool same = true;

	if (!rsp)
		return;
	gt_check_status(rsp, SMP_STATUS_OK, 0, 0, rec->file);
	is_int(smp_os_taskstat_parse(rsp, &t), 0, "%s taskstat parses", rec->file);
	if (t && is_int(t->n_tasks, 10, "%s taskstat has 10 threads", rec->file)) {
		for (size_t i = 0; i < 10; i++) {
			const struct smp_os_task *k = &t->tasks[i];

			if (strcmp(k->name, want[i].name) || k->prio != want[i].prio ||
			    k->tid != want[i].tid || k->state != want[i].state || k->present != 0) {
				tap_diag("thread %zu: %s prio %lld", i, k->name, (long long)k->prio);
				same = false;
			}
		}
		ok(same, "%s taskstat names, signed prio, tid, state; no optional fields",
		   rec->file);
	}
	smp_os_taskstat_free(t);
	smp_response_free(rsp);
}

static void test_recorded_responses(const struct gt_recording *rec)
{
	bool v2 = rec->version == 1;
	struct smp_response *rsp;
	struct smp_os_params params;
	struct smp_os_mpstat *mp = NULL;
	struct smp_os_bootloader_info *bl = NULL;
	char *s = NULL;

	if ((rsp = gt_recording_response(rec, "os echo"))) {
		gt_check_status(rsp, SMP_STATUS_OK, 0, 0, "recorded echo");
		is_int(smp_os_echo_parse(rsp, &s), 0, "%s echo parses", rec->file);
		is_str(s, "hello", "%s echo", rec->file);
		free(s);
		s = NULL;
		smp_response_free(rsp);
	}
	check_taskstat(rec);
	if ((rsp = gt_recording_response(rec, "os mpstat (unsupported here)"))) {
		gt_check_status(rsp, SMP_STATUS_RC, 0, SMP_RC_ENOTSUP, "recorded mpstat");
		is_int(smp_os_mpstat_parse(rsp, &mp), -EREMOTEIO, "%s mpstat: error response",
		       rec->file);
		ok(!mp, "%s mpstat: no result", rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "os datetime set"))) {
		gt_check_status(rsp, SMP_STATUS_OK, 0, 0, "recorded datetime set");
		is_int(smp_groups_parse_any(rsp), 0, "%s datetime set: empty success", rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "os datetime get"))) {
		is_int(smp_os_datetime_parse(rsp, &s), 0, "%s datetime get parses", rec->file);
		is_str(s, "2026-11-21T10:00:00", "%s datetime", rec->file);
		free(s);
		s = NULL;
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "os params"))) {
		is_int(smp_os_params_parse(rsp, &params), 0, "%s params parse", rec->file);
		ok(params.buf_size == 2048 && params.buf_count == 8, "%s params 2048 x 8",
		   rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "os info all"))) {
		is_int(smp_os_info_parse(rsp, &s), 0, "%s info parses", rec->file);
		is_str(s,
		       "Zephyr unknown v4.1.0 4.1.0 Sat Nov 21 11:39:02 2026 posix unknown "
		       "native_sim Zephyr",
		       "%s info output", rec->file);
		free(s);
		s = NULL;
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "os info bad format"))) {
		if (v2)
			gt_check_status(rsp, SMP_STATUS_GROUP_ERR, SMP_GROUP_OS, 2,
					"v2 info: OS INVALID_FORMAT");
		else
			gt_check_status(rsp, SMP_STATUS_RC, 0, SMP_RC_EINVAL, "v1 info: EINVAL");
		is_int(smp_os_info_parse(rsp, &s), -EREMOTEIO, "%s bad format: error", rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "os bootloader (no mcuboot here)"))) {
		if (v2)
			gt_check_status(rsp, SMP_STATUS_GROUP_ERR, SMP_GROUP_OS, 3,
					"v2 bootloader: QUERY_YIELDS_NO_ANSWER");
		else
			gt_check_status(rsp, SMP_STATUS_RC, 0, SMP_RC_ENOENT, "v1 bootloader: ENOENT");
		is_int(smp_os_bootloader_parse(rsp, &bl), -EREMOTEIO, "%s bootloader: error",
		       rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "unknown command"))) {
		gt_check_status(rsp, SMP_STATUS_RC, 0, SMP_RC_ENOTSUP, "unknown OS command");
		is_int(smp_groups_parse_any(rsp), -ENOTSUP, "%s OS command 99 has no parser",
		       rec->file);
		smp_response_free(rsp);
	}
}

static void test_bootloader_shapes(void)
{
	struct smp_os_bootloader_info *bl = NULL;
	struct smp_response *rsp;

	/* {"bootloader": "MCUboot"} */
	rsp = gt_response("09000014 00000008 | a16a626f6f746c6f61646572674d4355626f6f74", "name");
	if (rsp) {
		is_int(smp_os_bootloader_parse(rsp, &bl), 0, "bootloader name parses");
		is_str(bl ? bl->bootloader : NULL, "MCUboot", "bootloader name");
		bl = smp_os_bootloader_info_free(bl);
		smp_response_free(rsp);
	}
	/* {"mode": -1, "no-downgrade": true} */
	rsp = gt_response("09000015 00000008 | a2646d6f6465206c6e6f2d646f776e6772616465f5", "mode");
	if (rsp) {
		is_int(smp_os_bootloader_parse(rsp, &bl), 0, "mode + no-downgrade parses");
		ok(bl && bl->has_mode && bl->mode == -1 && bl->has_no_downgrade && bl->no_downgrade,
		   "mode -1 with no-downgrade");
		bl = smp_os_bootloader_info_free(bl);
		smp_response_free(rsp);
	}
	/* {"active": 1} */
	rsp = gt_response("09000009 00000008 | a16661637469766501", "active");
	if (rsp) {
		is_int(smp_os_bootloader_parse(rsp, &bl), 0, "active parses");
		ok(bl && bl->has_active && bl->active == 1 && !bl->has_mode, "active b0 slot 1");
		bl = smp_os_bootloader_info_free(bl);
		smp_response_free(rsp);
	}
	gt_check_payload("bootloader {} is malformed", 0, SMP_OS_BOOTLOADER, READ, "bfff", -EBADMSG);
	gt_check_payload("bootloader with only no-downgrade is malformed", 0, SMP_OS_BOOTLOADER,
			 READ, "bf6c6e6f2d646f776e6772616465f5ff", -EBADMSG);
	gt_check_payload("legacy rc 0 beside bootloader", 0, SMP_OS_BOOTLOADER, READ,
			 "bf62726300646d6f646501ff", 0);
}

static void test_mpstat_shapes(void)
{
	struct smp_os_mpstat *mp = NULL;
	struct smp_response *rsp;

	/* Mynewt: {"rc": 0, "mpools": {"msys_1": {"blksiz": 292, "nblks": 12, "nfree": 10,
	 * "min": 8}}}, definite lengths. */
	rsp = gt_response("09000032 00000003 | a262726300666d706f6f6c73a1666d7379735f31a466626c6b"
			  "73697a190124656e626c6b730c656e667265650a636d696e08",
			  "mynewt mpstat");
	if (rsp) {
		is_int(smp_os_mpstat_parse(rsp, &mp), 0, "Mynewt mpools form parses");
		ok(mp && mp->n_pools == 1 && strcmp(mp->pools[0].name, "msys_1") == 0 &&
			   mp->pools[0].blksiz == 292 && mp->pools[0].nblks == 12 &&
			   mp->pools[0].nfree == 10 && mp->pools[0].has_min && mp->pools[0].min == 8,
		   "Mynewt pool fields");
		mp = smp_os_mpstat_free(mp);
		smp_response_free(rsp);
	}
	/* Zephyr's documented form: pools at top level, no min. */
	rsp = gt_response("0900003b 00000003 | a26468656170a366626c6b73697a10656e626c6b731864656e"
			  "6672656518206473706f6fa366626c6b73697a01656e626c6b7301656e6672656500",
			  "zephyr mpstat");
	if (rsp) {
		is_int(smp_os_mpstat_parse(rsp, &mp), 0, "top-level pools parse");
		ok(mp && mp->n_pools == 2 && strcmp(mp->pools[0].name, "heap") == 0 &&
			   mp->pools[0].blksiz == 16 && mp->pools[0].nblks == 100 &&
			   mp->pools[0].nfree == 32 && !mp->pools[0].has_min &&
			   strcmp(mp->pools[1].name, "spoo") == 0 && mp->pools[1].nfree == 0,
		   "top-level pool fields");
		mp = smp_os_mpstat_free(mp);
		smp_response_free(rsp);
	}
	gt_check_payload("top-level rc 0 and a number are skipped", 0, SMP_OS_MPSTAT, READ,
			 "a26272630065636f756e7405", 0);
	gt_check_payload("mpools must be a map", 0, SMP_OS_MPSTAT, READ, "bf666d706f6f6c7380ff",
			 -EBADMSG);
	gt_check_payload("a pool in mpools must be a map", 0, SMP_OS_MPSTAT, READ,
			 "bf666d706f6f6c73bf616101ffff", -EBADMSG);
	gt_check_payload("pool names must be text", 0, SMP_OS_MPSTAT, READ,
			 "bf666d706f6f6c73bf01bf66626c6b73697a01656e626c6b7301656e6672656500ffffff",
			 -EBADMSG);
}

static void test_malformed(void)
{
	static const struct gt_field echo[] = { { "r", "6161", "01", true } };
	static const struct gt_field datetime[] = { { "datetime", "6161", "4161", true } };
	static const struct gt_field info[] = { { "output", "6161", "816161", true } };
	static const struct gt_field params[] = {
		{ "buf_size", "190800", "6161", true },
		{ "buf_count", "08", "20", true },
	};
	static const struct gt_field task[] = {
		{ "prio", "20", "6161", true },
		{ "tid", "00", "20", true },
		{ "state", "02", "f5", true },
		{ "stkuse", "1840", "20", false },
		{ "stksiz", "190100", "4100", false },
		{ "cswcnt", "00", "a0", false },
		{ "runtime", "1b0000000100000000", "fb3ff0000000000000", false },
		{ "last_checkin", "00", "20", false },
		{ "next_checkin", "00", "20", false },
	};
	static const struct gt_field tasks[] = { { "tasks", "a0", "80", true } };
	static const struct gt_field pool[] = {
		{ "blksiz", "10", "6161", true },
		{ "nblks", "10", "20", true },
		{ "nfree", "10", "f4", true },
		{ "min", "10", "20", false },
	};
	static const struct gt_field bootloader[] = {
		{ "bootloader", "674d4355626f6f74", "01", false },
		{ "mode", "03", "6161", false },
		{ "no-downgrade", "f5", "01", false },
		{ "active", "01", "20", false },
	};

	gt_check_fields("echo", 0, SMP_OS_ECHO, WRITE, "", echo, 1, "");
	gt_check_fields("datetime", 0, SMP_OS_DATETIME, READ, "", datetime, 1, "");
	gt_check_fields("info", 0, SMP_OS_INFO, READ, "", info, 1, "");
	gt_check_fields("params", 0, SMP_OS_PARAMS, READ, "", params, 2, "");
	gt_check_fields("taskstat", 0, SMP_OS_TASKSTAT, READ, "", tasks, 1, "");
	gt_check_fields("taskstat entry", 0, SMP_OS_TASKSTAT, READ, "bf657461736b73bf646d61696e",
			task, 9, "ffff");
	gt_check_fields("mpstat pool", 0, SMP_OS_MPSTAT, READ, "bf666d706f6f6c73bf64706f6f6c",
			pool, 4, "ffff");
	gt_check_fields("mpstat top-level pool", 0, SMP_OS_MPSTAT, READ, "bf64706f6f6c", pool, 4,
			"ff");
	gt_check_fields("bootloader", 0, SMP_OS_BOOTLOADER, READ, "", bootloader, 4, "");

	gt_check_payload("params buf_size beyond 32 bits", 0, SMP_OS_PARAMS, READ,
			 "bf686275665f73697a651b0000000100000000696275665f636f756e7408ff", -EBADMSG);
	gt_check_payload("task prio below int64", 0, SMP_OS_TASKSTAT, READ,
			 "bf657461736b73bf616bbf647072696f3bffffffffffffffff6374696400657374617465"
			 "00ffffff",
			 -EBADMSG);
	gt_check_payload("task name not text", 0, SMP_OS_TASKSTAT, READ,
			 "bf657461736b73bf01bf647072696f00637469640065737461746500ffffff", -EBADMSG);
	gt_check_payload("task name with a NUL", 0, SMP_OS_TASKSTAT, READ,
			 "bf657461736b73bf62610 0bf647072696f00637469640065737461746500ffffff",
			 -EBADMSG);
	gt_check_payload("task entry not a map", 0, SMP_OS_TASKSTAT, READ,
			 "bf657461736b73bf616b00ffff", -EBADMSG);
	gt_check_payload("echo text with a NUL", 0, SMP_OS_ECHO, WRITE, "bf6172626100ff", -EBADMSG);

	gt_check_hostile("echo", 0, SMP_OS_ECHO, WRITE, "", "r");
	gt_check_hostile("taskstat", 0, SMP_OS_TASKSTAT, READ, "", "tasks");
	gt_check_hostile("mpstat", 0, SMP_OS_MPSTAT, READ, "", "mpools");
	gt_check_hostile("params", 0, SMP_OS_PARAMS, READ, "696275665f636f756e7408", "buf_size");
	gt_check_hostile("bootloader", 0, SMP_OS_BOOTLOADER, READ, "", "mode");
	gt_check_hostile("info", 0, SMP_OS_INFO, READ, "", "output");
}

static void test_boot_modes(void)
{
	is_str(smp_os_boot_mode_name(-1), "unknown", "mode -1");
	is_str(smp_os_boot_mode_name(1), "swap-scratch", "mode 1");
	is_str(smp_os_boot_mode_name(3), "swap-move", "mode 3");
	is_str(smp_os_boot_mode_name(9), "swap-offset", "mode 9");
	ok(!smp_os_boot_mode_name(10), "mode 10 is unknown");
	ok(!smp_os_boot_mode_name(-2), "mode -2 is unknown");
	ok(smp_os_boot_mode_can_revert(1) && smp_os_boot_mode_can_revert(3) &&
		   smp_os_boot_mode_can_revert(5) && smp_os_boot_mode_can_revert(9),
	   "swap and direct-XIP-with-revert modes can revert");
	ok(!smp_os_boot_mode_can_revert(0) && !smp_os_boot_mode_can_revert(2) &&
		   !smp_os_boot_mode_can_revert(4) && !smp_os_boot_mode_can_revert(-1),
	   "single, overwrite, direct-XIP and unknown cannot");
}

int main(void)
{
	struct gt_recording *v2 = gt_recording_load("udp-v2.json");
	struct gt_recording *v1 = gt_recording_load("udp-v1.json");

	test_request_vectors();
	test_recorded_requests(v2);
	test_recorded_requests(v1);
	test_response_vectors();
	test_recorded_responses(v2);
	test_recorded_responses(v1);
	test_bootloader_shapes();
	test_mpstat_shapes();
	test_malformed();
	test_boot_modes();
	gt_check_recordings_robust(SMP_GROUP_OS);

	gt_recording_free(v2);
	gt_recording_free(v1);
	return tap_done();
}
