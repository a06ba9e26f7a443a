/* test-smp-shell: shell group builder and parser against smp-protocol.md §15 and Zephyr 4.1 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-groups.h"
#include "smp-shell.h"
#include "tests/tap.h"
#include "tests/unit/group-test.h"

#define WRITE SMP_OP_WRITE_RSP

static void test_requests(void)
{
	static const char *const version[] = { "kernel", "version" };
	static const char *const with_null[] = { "kernel", NULL };
	struct smp_request *r = NULL;
	int err;

	err = smp_shell_exec_request(version, 2, &r);
	gt_check_request(err, r, 1, 0x30,
			 "0a000016 00093000 | a1646172677682666b65726e656c6776657273696f6e",
			 "V21 shell exec");
	is_int(smp_shell_exec_request(version, 0, &r), -EINVAL, "no arguments");
	is_int(smp_shell_exec_request(NULL, 1, &r), -EINVAL, "NULL argv");
	is_int(smp_shell_exec_request(with_null, 2, &r), -EINVAL, "NULL element");
}

static void check_exec(const struct smp_response *rsp, const char *out, size_t out_len,
		       int64_t ret, const char *what)
{
	struct smp_shell_result *res = NULL;

	is_int(smp_shell_exec_parse(rsp, &res), 0, "%s parses", what);
	if (res) {
		is_mem(res->output, res->output_len, out, out_len, "%s output", what);
		ok(res->output[res->output_len] == 0, "%s output is NUL-terminated", what);
		is_int(res->ret, ret, "%s exit code", what);
	}
	smp_shell_result_free(res);
}

static void test_recorded(const struct gt_recording *rec)
{
	static const char *const uptime[] = { "kernel", "uptime" };
	static const char *const nosuch[] = { "nosuchcmd" };
	static const char notfound[] = "\r\n\x1b[1;31mnosuchcmd: command not found\r\n\x1b[m";
	struct smp_request *r = NULL;
	struct smp_response *rsp;
	int err;

	err = smp_shell_exec_request(uptime, 2, &r);
	gt_check_recorded_request(rec, "shell exec", err, r);
	err = smp_shell_exec_request(nosuch, 1, &r);
	gt_check_recorded_request(rec, "shell exec unknown", err, r);

	if ((rsp = gt_recording_response(rec, "shell exec"))) {
		const char *want = rec->version == 1 ? "\r\nUptime: 370 ms\r\n"
						     : "\r\nUptime: 5310 ms\r\n";

		gt_check_status(rsp, SMP_STATUS_OK, 0, 0, "recorded shell exec");
		check_exec(rsp, want, strlen(want), 0, rec->file);
		smp_response_free(rsp);
	}
	if ((rsp = gt_recording_response(rec, "shell exec unknown"))) {
		/* A failing command is output with a non-zero exit code, not an SMP error. */
		gt_check_status(rsp, SMP_STATUS_OK, 0, 0, "recorded unknown shell command");
		check_exec(rsp, notfound, strlen(notfound), -8, "unknown command");
		smp_response_free(rsp);
	}
}

static void test_responses(void)
{
	struct smp_response *rsp;

	rsp = gt_response("0b00001e 00093000 | bf616f745a65706879722076657273696f6e20332e372e306372"
			  "657400ff",
			  "V22");
	if (rsp) {
		check_exec(rsp, "Zephyr version 3.7.0", 20, 0, "V22");
		smp_response_free(rsp);
	}
	/* Before Zephyr 3.2: {"o": "x", "rc": 2}; "rc" is the exit code, not an error. */
	rsp = gt_response("0b000009 00090000 | a2616f617862726302", "legacy rc");
	if (rsp) {
		gt_check_status(rsp, SMP_STATUS_OK, 0, 0, "legacy rc beside o is success");
		check_exec(rsp, "x", 1, 2, "legacy rc");
		smp_response_free(rsp);
	}
	/* Output with a NUL and a control byte, as text. */
	rsp = gt_response("0b00000d 00090000 | bf616f6361000d6372657401ff", "NUL in text");
	if (rsp) {
		check_exec(rsp, "a\0\r", 3, 1, "text output with a NUL");
		smp_response_free(rsp);
	}
	/* Text that is not UTF-8 (raw device output): smp_cbor_load hands it over
	 * as bytes instead of refusing the packet, and the parser keeps them. */
	rsp = gt_response("0b00000d 00090000 | bf616f636100ff6372657401ff", "non-UTF-8 text");
	if (rsp) {
		check_exec(rsp, "a\0\xff", 3, 1, "text output that is not UTF-8");
		smp_response_free(rsp);
	}
	/* That output as a byte string. */
	rsp = gt_response("0b00000d 00090000 | bf616f436100ff6372657401ff", "byte output");
	if (rsp) {
		check_exec(rsp, "a\0\xff", 3, 1, "byte-string output");
		smp_response_free(rsp);
	}
	rsp = gt_response("0b00000f 00090000 | bf616f6178637265742062726305ff", "ret and rc");
	if (rsp) {
		check_exec(rsp, "x", 1, -1, "ret wins over a legacy rc");
		smp_response_free(rsp);
	}
	gt_check_payload("legacy rc without o is an SMP error", 9, 0, WRITE, "bf62726303ff",
			 -EREMOTEIO);
	gt_check_payload("v2 SHELL COMMAND_TOO_LONG", 9, 0, WRITE,
			 "bf63657272bf6567726f75700962726302ffff", -EREMOTEIO);
	gt_check_payload("legacy rc of the wrong type", 9, 0, WRITE, "bf616f61786272636161ff",
			 -EBADMSG);
	gt_check_payload("ret beyond int64", 9, 0, WRITE, "bf616f6178637265741bffffffffffffffffff",
			 -EBADMSG);
	gt_check_payload("empty output", 9, 0, WRITE, "bf616f60637265742aff", 0);
	gt_check_payload("shell has no READ", 9, 0, SMP_OP_READ_RSP, "bf616f60637265742aff",
			 -ENOTSUP);
	gt_check_payload("shell command 1 has no parser", 9, 1, WRITE, "bfff", -ENOTSUP);
}

static void test_malformed(void)
{
	static const struct gt_field exec[] = {
		{ "o", "626f6b", "01", true },
		{ "ret", "20", "6161", true },
	};

	gt_check_fields("exec", 9, 0, WRITE, "", exec, 2, "");
	gt_check_hostile("exec output", 9, 0, WRITE, "6372657400", "o");
	/* A map under "ret" is Zephyr 3.4's v2 error map: the status decoder refuses
	 * one without group and rc before any parser runs. */
	gt_check_payload("exec ret as a deep map", 9, 0, WRITE,
			 "bf616f6178637265 74a1616ba1616ba1616b00ff", GT_UNDECODABLE);
	gt_check_payload("exec ret as a v2 error map", 9, 0, WRITE,
			 "bf616f6178637265 74bf6567726f75700962726303ffff", -EREMOTEIO);
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
	gt_check_recordings_robust(SMP_GROUP_SHELL);

	gt_recording_free(v2);
	gt_recording_free(v1);
	return tap_done();
}
